"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policies`.

Pulumi runs it in the project venv (PulumiPolicy.yaml), where `infra` is an installed package.
"""

from pulumi_policy import PolicyPack

from infra.policies.controls import all_policies

PolicyPack(name="shop-aws-security-hub", policies=all_policies())
