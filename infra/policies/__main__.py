"""The CrossGuard policy pack: `pulumi preview --policy-pack infra/policies`."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pulumi_policy import PolicyPack  # noqa: E402

from infra.policies.controls import all_policies  # noqa: E402

PolicyPack(name="shop-aws-security-hub", policies=all_policies())
