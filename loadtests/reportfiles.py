"""Names of the files in a run folder (reports/<time>-<profile>/)."""

SUMMARY_FILE = "summary.json"  # per-request and per-journey stats, gates, timeline
PLOT_FILE = "plot.png"  # throughput, latency percentiles, errors, CPU over time
CAPACITY_FILE = "capacity.md"  # step profiles: the knee, what ran out, headroom
HTML_FILE = "report.html"  # Locust's own report
CSV_PREFIX = "locust"  # Locust's CSVs: locust_stats.csv, locust_stats_history.csv, ...
