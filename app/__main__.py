"""Operations commands of the shop: `python -m app <command> [options]`.

Each command is a module with HELP, `add_arguments(parser)` and `run(args) -> exit status`;
add one to COMMANDS. They read the shop's own environment (DATABASE_URL, PARTNERS_...).

  reconcile   orders vs the payment providers' ledgers vs the mail outbox (app/reconcile.py)
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {
    "reconcile": "app.reconcile",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
