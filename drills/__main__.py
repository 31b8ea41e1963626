"""`python -m drills run [DRILL ...] | fault NAME [--clear] | list` (see drills/__init__.py).

The lab is the one the environment names, as for `python -m lab` (LAB_NAME, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import faults, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    drill = commands.add_parser("run", help="run drills (all by default) and write the report")
    drill.add_argument("drills", nargs="*", help=f"of: {', '.join(run.names())}")
    drill.add_argument("--report-dir", type=Path, default=run.REPORT_DIR)
    fault = commands.add_parser("fault", help="bring one fault into the lab, or clear it")
    fault.add_argument("name", help=f"of: {', '.join(sorted(faults.FAULTS))}")
    fault.add_argument("--clear", action="store_true", help="clear the fault instead")
    commands.add_parser("list", help="the drills and the faults")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run.main(args.drills, args.report_dir)
    if args.command == "fault":
        return faults.main(args.name, args.clear)
    print("drills: " + ", ".join(run.names()))
    for name, known in sorted(faults.FAULTS.items()):
        print(f"fault {name}: {known.description}")
    return 0


raise SystemExit(main())
