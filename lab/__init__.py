"""The lab: the production shape of the shop built from podman containers on one machine.

`python -m lab up|converge|status|down` (the Makefile's `make lab`, `make lab-status`,
`make lab-down` call these). The lab reads the network from `topology.load()` and
converges its hosts with playbooks/site.yml, the same playbook production uses.
"""
