"""Run the Pulumi program of one stack under the SDK's mocks and print the model as JSON.

Pulumi's runtime keeps global state (settings, the root stack), so each stack
runs in a process of its own: `python tests/infra/mocked_stack.py <stack>`.
No CLI, engine or provider plugin is involved: the mocks answer every resource
registration with its inputs plus the outputs a real provider would compute.

Config comes from the stack's Pulumi.<stack>.yaml plus the site-specific
values a user sets per clone (domain, hosted zone, AMI, secrets).
"""

from __future__ import annotations

import json
import runpy
import secrets
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks, rpc
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["name"]
PROGRAM = REPO_ROOT / yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["main"]
SECRET_SIG = "4dabf18193072939515e22adb298388d"
ACCOUNT_ID = "123456789012"


def site_config(stack: str) -> tuple[dict[str, str], dict[str, str]]:
    """The per-clone values a user sets with `pulumi config set`: (plain, secret)."""
    plain = {
        f"{PROJECT}:domainName": f"{stack}.shop.example.com",
        f"{PROJECT}:hostedZoneId": "Z0TESTZONE",
        f"{PROJECT}:appAmiId": "ami-0123456789abcdef0",
        f"{PROJECT}:alertEmail": "oncall@example.com",
    }
    secret = {
        f"{PROJECT}:cacheAuthToken": secrets.token_hex(32),
        f"{PROJECT}:pagerWebhookUrl": f"https://pager.example.com/hook/{secrets.token_hex(8)}",
    }
    return plain, secret


def stack_config(stack: str) -> dict[str, str]:
    """The stack file's config as the CLI hands it to a program: lists and maps as JSON."""
    raw = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {
        key: json.dumps(value) if isinstance(value, list | dict) else str(value)
        for key, value in raw.items()
    }


def _computed_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the provider would add to the inputs of a resource of type `typ`."""
    arn = f"arn:aws:mock:eu-central-1:{ACCOUNT_ID}:{typ.split(':')[-1].lower()}/{name}"
    out: dict[str, Any] = {"arn": arn}
    if "name" not in inputs:
        out["name"] = name
    match typ:
        case "aws:s3/bucket:Bucket":
            out["bucket"] = name
        case "aws:acm/certificate:Certificate":
            out["domainValidationOptions"] = [
                {
                    "domainName": inputs["domainName"],
                    "resourceRecordName": f"_v.{inputs['domainName']}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": "_v.acm-validations.aws.",
                }
            ]
        case "aws:acm/certificateValidation:CertificateValidation":
            out["certificateArn"] = inputs["certificateArn"]
        case "aws:route53/record:Record":
            out["fqdn"] = inputs["name"]
        case "aws:lb/loadBalancer:LoadBalancer":
            out["dnsName"] = f"{name}-1234.eu-central-1.elb.amazonaws.com"
            out["zoneId"] = "Z215JYRZR1TBD5"
        case "aws:rds/instance:Instance":
            out["identifier"] = name
            out["address"] = f"{name}.abc.eu-central-1.rds.amazonaws.com"
            out["masterUserSecrets"] = [{"secretArn": f"{arn}-master-secret"}]
        case "aws:elasticache/replicationGroup:ReplicationGroup":
            out["primaryEndpointAddress"] = f"master.{name}.abc.euc1.cache.amazonaws.com"
        case "aws:ec2/launchTemplate:LaunchTemplate":
            out["latestVersion"] = 1
        case "aws:ec2/instance:Instance":
            out["privateIp"] = "10.0.0.10"
    return out


class StackMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", {
            **args.inputs,
            **_computed_outputs(args.typ, args.name, args.inputs),
        }

    def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:
        match args.token:
            case "aws:ec2/getAmi:getAmi":
                return {"id": "ami-0debian12mock0000", "imageId": "ami-0debian12mock0000"}
            case "aws:elb/getServiceAccount:getServiceAccount":
                return {"id": "054676820928", "arn": "arn:aws:iam::054676820928:root"}
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "arn": "arn", "userId": "u"}
        raise ValueError(f"the mocks do not know the function {args.token}: add it")


class RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what the engine would know of each resource."""

    def __init__(self, resource_mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(resource_mocks)
        self.records: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method's name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.records.append(
                {
                    "urn": response.urn,
                    "id": response.id or None,
                    "type": request.type,
                    "name": request.name,
                    "custom": request.custom,
                    "parent": request.parent or None,
                    "protect": request.protect,
                    "inputs": inputs,
                    "state": self.resources[response.urn].state if request.custom else {},
                    "dependencies": list(request.dependencies),
                    "property_dependencies": {
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                    },
                }
            )
        return response


def _plain(value: Any) -> Any:
    """JSON-ready copy; secrets become {"__secret__": value} so tests can see them."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return {"__secret__": _plain(value.get("value"))}
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def run(stack: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    plain, secret = site_config(stack)
    config = {**stack_config(stack), **plain, **secret, **(overrides or {})}
    pulumi.runtime.set_all_config(config, list(secret))
    monitor = RecordingMonitor(StackMocks())
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor
    )
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))

    outputs: dict[str, Any] = {}
    for key, value in get_root_resource().outputs.items():
        output = pulumi.Output.from_input(value)
        outputs[key] = {
            "value": _plain(_sync_await(output.future())),
            "secret": _sync_await(output.is_secret()),
        }
    return {
        "stack": stack,
        "config": config,
        "secret_config_keys": sorted(secret),
        "resources": _plain(monitor.records),
        "outputs": outputs,
    }


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"config override {pair!r} is not KEY=VALUE")
        overrides[key] = value
    return overrides


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: mocked_stack.py <stack> [project:key=value ...]")
    json.dump(run(sys.argv[1], _parse_overrides(sys.argv[2:])), sys.stdout)
