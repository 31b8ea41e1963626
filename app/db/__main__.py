"""Database commands for deploys: `python -m app.db migrate` (once per deploy), `... current`."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from app.db.migrate import current_revision, upgrade_to_head
from app.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.db", description=__doc__)
    parser.add_argument("command", choices=["migrate", "current"])
    args = parser.parse_args(argv)
    try:
        url = get_settings().database_url
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: bad settings: {problems}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        upgrade_to_head(url)
        print("schema is at head", file=sys.stderr)
    else:
        current_revision(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
