"""The mocked program of one stack as data: resources, their inputs and links."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).with_name("mocked_stack.py")
STACKS = ("dev", "staging", "prod")


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__secret__"}:
            return unwrap_secrets(value["__secret__"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


@dataclass
class Resource:
    urn: str
    id: str | None
    type: str
    name: str
    custom: bool
    parent: str | None
    protect: bool
    raw_inputs: dict[str, Any]  # secrets still wrapped as {"__secret__": value}
    state: dict[str, Any]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.inputs = unwrap_secrets(self.raw_inputs)

    @property
    def tags(self) -> dict[str, str]:
        return self.inputs.get("tags") or {}


@dataclass
class StackModel:
    stack: str
    config: dict[str, str]
    secret_config_keys: list[str]
    resources: list[Resource]
    outputs: dict[str, dict[str, Any]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackModel:
        resources = [
            Resource(
                urn=r["urn"],
                id=r["id"],
                type=r["type"],
                name=r["name"],
                custom=r["custom"],
                parent=r["parent"],
                protect=r["protect"],
                raw_inputs=r["inputs"],
                state=unwrap_secrets(r["state"]),
                dependencies=r["dependencies"],
                property_dependencies=r["property_dependencies"],
            )
            for r in data["resources"]
        ]
        return cls(
            data["stack"], data["config"], data["secret_config_keys"], resources, data["outputs"]
        )

    def config_value(self, key: str) -> str:
        return self.config[f"shop-ops:{key}"]

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources if r.type == resource_type]

    def one(self, resource_type: str) -> Resource:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]

    def by_id(self, resource_id: str) -> Resource:
        matches = [r for r in self.resources if r.id == resource_id]
        assert len(matches) == 1, f"no single resource with id {resource_id!r}"
        return matches[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def custom_resources(self) -> Iterator[Resource]:
        return (r for r in self.resources if r.custom)


def run_stack(stack: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), stack, *overrides],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@functools.cache
def load_dev_with_admin_cidrs(cidrs: tuple[str, ...]) -> StackModel:
    """The dev stack run with other operator networks (`adminCidrs` config), once per set."""
    result = run_stack("dev", f"shop-ops:adminCidrs={json.dumps(list(cidrs))}")
    assert result.returncode == 0, result.stderr
    return StackModel.from_json(json.loads(result.stdout))


def load_all(stacks: tuple[str, ...] = STACKS) -> dict[str, StackModel]:
    """Run every stack's program under mocks, each in its own process, in parallel."""
    processes = {
        stack: subprocess.Popen(
            [sys.executable, str(RUNNER), stack],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stack in stacks
    }
    models = {}
    for stack, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"the mocked {stack} program failed:\n{stderr}")
        models[stack] = StackModel.from_json(json.loads(stdout))
    return models
