"""Turn sandbox fault knobs from a shell (QA, runbooks, load tests).

    python -m app.sandbox.knobs [--admin URL] show
    python -m app.sandbox.knobs [--admin URL] set SERVICE KNOB=VALUE [KNOB=VALUE ...]
    python -m app.sandbox.knobs [--admin URL] reset [SERVICE]

URL defaults to the lab's admin port (topology `partners_metrics`) on 127.0.0.1.
Example: `python -m app.sandbox.knobs set card-primary outage=true`.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx

import topology


def _value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise SystemExit(f"knob value {text!r} is neither a number nor true/false") from None


def _knobs(pairs: list[str]) -> dict[str, object]:
    knobs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected KNOB=VALUE, got {pair!r}")
        knobs[name] = _value(value)
    return knobs


def main(argv: list[str] | None = None) -> int:
    default_admin = f"http://127.0.0.1:{topology.load().port('partners_metrics')}"
    parser = argparse.ArgumentParser(
        prog="python -m app.sandbox.knobs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--admin", default=default_admin, help="sandbox admin base URL")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("show", help="every service's knobs")
    turn = sub.add_parser("set", help="change knobs of one service")
    turn.add_argument("service")
    turn.add_argument("knobs", nargs="+", metavar="KNOB=VALUE")
    reset = sub.add_parser("reset", help="all knobs back to normal")
    reset.add_argument("service", nargs="?")
    args = parser.parse_args(argv)

    with httpx.Client(base_url=args.admin, timeout=10) as client:
        try:
            if args.command == "show":
                response = client.get("/admin/faults")
            elif args.command == "set":
                response = client.put(f"/admin/faults/{args.service}", json=_knobs(args.knobs))
            else:
                path = f"/admin/faults/{args.service}" if args.service else "/admin/faults"
                response = client.delete(path)
        except httpx.HTTPError as exc:
            print(f"cannot reach the sandbox admin at {args.admin}: {exc}", file=sys.stderr)
            return 2
    if response.is_error:
        error = response.json().get("error", {})
        print(f"refused ({response.status_code}): {error.get('message')}", file=sys.stderr)
        for problem in error.get("problems", []):
            print(f"  {problem['field']}: {problem['problem']}", file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
