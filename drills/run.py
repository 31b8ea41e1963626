"""Run drills with the Chaos Toolkit CLI, one experiment after another, and report.

Each drill runs as `chaos run --rollback-strategy always` (its rollbacks clear the fault
and stop the load even when a step failed), with its journal, log and records in
reports/drills/<drill>/. A drill passes when its journal shows every activity and
rollback succeeded and the steady state held, and the pager received no page the drill
does not call deserved (report.verdict, report.summarise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import lab_access, report

EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
REPORT_DIR = lab_access.REPO / "reports" / "drills"
DRILL_TIMEOUT_S = 60 * 60  # the slowest: a page that waits out a 30-minute window


def names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def run_one(name: str, report_dir: Path) -> None:
    drill_dir = report_dir / name
    shutil.rmtree(drill_dir, ignore_errors=True)
    drill_dir.mkdir(parents=True)
    command = [
        str(Path(sys.executable).with_name("chaos")),
        "--no-version-check",
        "--log-file", str(drill_dir / "chaostoolkit.log"),
        "--settings", str(drill_dir / "chaostoolkit-settings.yaml"),
        "run",
        "--rollback-strategy", "always",
        "--journal-path", str(drill_dir / "journal.json"),
        str(EXPERIMENTS_DIR / f"{name}.yaml"),
    ]  # fmt: skip
    started = time.monotonic()
    print(f"drills: {name} ...", flush=True)
    env = {**os.environ, "DRILL_DIR": str(drill_dir)}
    with (drill_dir / "chaos.out").open("wb") as out:
        subprocess.run(  # noqa: S603 - our own command
            command,
            cwd=lab_access.REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=DRILL_TIMEOUT_S,
            check=False,
        )
    print(f"drills: {name} done in {time.monotonic() - started:.0f} s", flush=True)


def main(selected: list[str], report_dir: Path = REPORT_DIR) -> int:
    known = names()
    unknown = [n for n in selected if n not in known]
    if unknown:
        print(
            f"drills: no drill {', '.join(unknown)}; the drills: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    chosen = selected or known
    report_dir.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        run_one(name, report_dir)
    summaries = report.build(report_dir, chosen)
    for summary in summaries:
        verdict = "pass" if summary["passed"] else "FAIL: " + "; ".join(summary["problems"])
        print(f"drills: {summary['drill']}: {verdict}")
    print(f"drills: report in {report_dir / 'drills.md'}")
    return 0 if all(s["passed"] for s in summaries) else 1
