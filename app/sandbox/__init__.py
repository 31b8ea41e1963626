"""Stand-ins for the shop's external partners, run as real network services.

Each sandbox speaks HTTP (or SMTP) like the provider it replaces, keeps what it
was sent so tests can look, and has fault knobs (latency, error rate, timeouts,
outage, decline rate) that can be turned at run time over `/admin/faults` and
show up in `sandbox_*` metrics.
"""
