"""The shop's AWS stack as a Pulumi program (see README.md).

`__main__.py` composes six components (network, firewall, edge, app, data,
monitoring) from the stack's config; `realisation` says how the one topology
(topology/topology.yml) maps onto AWS, and `rules` turns that into security
group and network ACL rules.
"""
