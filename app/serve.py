"""Production serving: `python -m app.serve [--seed-if-empty]`.

1. Prepares PROMETHEUS_MULTIPROC_DIR (a fresh temporary one when unset; the
   stale files of an earlier run are removed) so /metrics is right with
   several workers.
2. Migrates the schema unless AUTO_MIGRATE=false (deploys migrate once with
   `python -m app.db migrate` and set it to false), and seeds an empty catalog
   when asked (SEED_PRODUCTS products, default 10000).
3. Replaces itself with gunicorn (same PID: SIGTERM to this process is a
   graceful drain). Workers: WEB_CONCURRENCY; address: BIND_HOST:PORT.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app.db.migrate import upgrade_to_head
from app.settings import get_settings

GUNICORN_CONF = Path(__file__).with_name("gunicorn_conf.py")


def _prepare_multiproc_dir(configured: str | None) -> str:
    if not configured:
        return tempfile.mkdtemp(prefix="shop-metrics-")
    path = Path(configured)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seed-if-empty", action="store_true", help="generate the catalog when there is none"
    )
    args = parser.parse_args(argv)
    # Only the workers write metric files; this process (migrate, seed) must not.
    multiproc_dir = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    settings = get_settings()
    if settings.auto_migrate:
        upgrade_to_head(settings.database_url)
    if args.seed_if_empty:
        from app.seed import main as seed_main

        seed_main(["--if-empty", "--products", os.environ.get("SEED_PRODUCTS", "10000")])
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = _prepare_multiproc_dir(multiproc_dir)
    env["AUTO_MIGRATE"] = "false"  # done above, once, not by every worker
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(  # noqa: S606 - replace this process with gunicorn, no shell
        gunicorn,
        [gunicorn, "--config", str(GUNICORN_CONF), "app.main:create_app()"],
        env,
    )


if __name__ == "__main__":
    main()
