"""Load tests of the shop: Locust journeys, profiles, SLO gates and capacity reports.

Entry points: `python -m loadtests run ...` (what `make loadtest` calls) and
`locust -f loadtests/locustfile.py`. See loadtests/README.md.
"""
