"""The shop's benchmarks: `python -m bench.core` and `python -m bench.slo_throughput`."""
