"""Game days in the lab: each fault drill is a Chaos Toolkit experiment (experiments/*.yaml).

A drill brings a real fault into the running lab under a steady load of shoppers, waits
for the alert to fire in Prometheus and for the page or ticket to reach the lab's pager,
runs the runbook's mitigation blocks from the runbook page itself, waits for the alert to
resolve, then accounts for every order. `python -m drills run` runs them with the `chaos`
CLI and writes the report (reports/drills/); `python -m drills fault NAME [--clear]` brings
or clears one fault by hand (`make lab-fault`).

The modules: faults (the catalogue of faults), activities (what experiments call),
lab_access (Prometheus, Alertmanager, the pager, the operator's shell), load (the shoppers),
integrity (orders against what customers were told and the reconciler), report.
"""
