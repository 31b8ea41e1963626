"""The drill report, built from what the drills left behind: each experiment's Chaos Toolkit
journal (what ran, when, with what output), the load's ledger (every answer the shoppers
got), the books (accounting.json) and what the pager received (notifications.json).

Writes reports/drills/drills.json, drills.md (the summary table the README quotes) and a
timeline per drill (<drill>/timeline.png: failed-request ratio and p95 latency over time,
with the fault, the alert firing, the page, the mitigation and the resolution marked).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests import ledger

from . import coverage

BIN_S = 10


def _outputs(journal: dict[str, Any]) -> dict[str, Any]:
    return {run["activity"]["name"]: run.get("output") for run in journal.get("run", [])}


def _extension(journal: dict[str, Any]) -> dict[str, Any]:
    for extension in journal["experiment"].get("extensions", []):
        if extension.get("name") == "drill":
            return extension
    return {}


def verdict(journal: dict[str, Any]) -> list[str]:
    """Why the drill failed (empty: it passed)."""
    problems = []
    if journal.get("status") != "completed":
        problems.append(f"experiment {journal.get('status')}")
    if journal.get("deviated"):
        problems.append("the steady state deviated")
    for run in journal.get("run", []):
        if run["status"] != "succeeded":
            problems.append(f"{run['activity']['name']}: {run.get('exception', [''])[-1].strip()}")
    for run in journal.get("rollbacks", []):
        if run["status"] != "succeeded":
            problems.append(f"rollback {run['activity']['name']} {run['status']}")
    return problems


def summarise(name: str, drill_dir: Path) -> dict[str, Any]:
    journal_path = drill_dir / "journal.json"
    if not journal_path.exists():
        return {"drill": name, "passed": False, "problems": ["no journal: chaos did not run"]}
    journal = json.loads(journal_path.read_text(encoding="utf-8"))
    outputs = _outputs(journal)
    extension = _extension(journal)
    state = (
        json.loads((drill_dir / "state.json").read_text())
        if (drill_dir / "state.json").exists()
        else {}
    )
    fault_at = state.get("fault_at")
    fired = outputs.get("alert-fires") or {}
    notified = outputs.get("page-arrives") or outputs.get("ticket-arrives") or {}
    mitigation = outputs.get("runbook-mitigation") or {}
    books_path = drill_dir / "accounting.json"
    books = json.loads(books_path.read_text()) if books_path.exists() else {}
    received_path = drill_dir / "notifications.json"
    received = json.loads(received_path.read_text()) if received_path.exists() else []
    deserved = set(extension.get("deserved_pages", []))
    pages = [
        {
            "alert": r["alertname"],
            "receiver": r["receiver"],
            "status": r["status"],
            "deserved": r["alertname"] in deserved,
        }
        for r in received
        if r["severity"] == "page" and r["status"] == "firing"
    ]
    tickets = sorted({r["alertname"] for r in received if r["severity"] == "ticket"})
    resolved_at = state.get("resolved_at")
    problems = verdict(journal)
    problems += [
        f"undeserved page: {p['alert']} ({p['receiver']})" for p in pages if not p["deserved"]
    ]
    return {
        "drill": name,
        "title": journal["experiment"]["title"],
        "passed": not problems,
        "problems": problems,
        "started": journal.get("start"),
        "duration_s": journal.get("duration"),
        "fault": extension.get("fault", name),
        "alert": fired.get("alert"),
        "seconds_to_fire": fired.get("seconds_to_fire"),
        "fire_budget_s": fired.get("budget_s"),
        "notified_receiver": notified.get("receiver"),
        "seconds_to_notify": notified.get("seconds_to_notify"),
        "notify_budget_s": notified.get("budget_s"),
        "runbook_url": notified.get("runbook_url"),
        "mitigation": mitigation and f"{mitigation['runbook']} block {mitigation['block']}",
        "mitigation_exit": mitigation.get("exit_code") if mitigation else None,
        "seconds_to_resolve": round(resolved_at - fault_at, 1)
        if resolved_at and fault_at
        else None,
        "pages": pages,
        "tickets": tickets,
        "books": books,
        "marks": {
            "fault": fault_at,
            "fired": fired.get("fired_seen_at"),
            "notified": notified.get("received_at"),
            "mitigation": mitigation.get("started_at") if mitigation else None,
            "resolved": resolved_at,
        },
        "alerts": extension.get("alerts", []),
    }


def plot_timeline(summary: dict[str, Any], drill_dir: Path) -> Path | None:
    lines = ledger.read_lines(drill_dir / "load" / ledger.REQUESTS_FILE)
    if not lines:
        return None
    start = min(r["t"] for r in lines)
    bins: dict[int, list[dict[str, Any]]] = {}
    for r in lines:
        bins.setdefault(int((r["t"] - start) // BIN_S), []).append(r)
    xs = [b * BIN_S for b in sorted(bins)]
    failed = [
        100 * sum(1 for r in bins[b] if ledger.unavailable(r)) / len(bins[b]) for b in sorted(bins)
    ]
    p95 = [
        statistics.quantiles([r["ms"] for r in bins[b]], n=20)[-1]
        if len(bins[b]) > 1
        else bins[b][0]["ms"]
        for b in sorted(bins)
    ]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 5))
    top.plot(xs, failed, color="tab:red")
    top.set_ylabel("failed requests (%)\n(5xx, no answer)")
    top.set_ylim(0, max(1.0, max(failed) * 1.2))
    bottom.plot(xs, p95, color="tab:blue")
    bottom.set_ylabel("p95 latency (ms)")
    bottom.set_xlabel("seconds since the load started")
    styles = {"fault": "black", "fired": "tab:orange", "notified": "tab:purple",
              "mitigation": "tab:green", "resolved": "tab:gray"}  # fmt: skip
    for mark, at in summary["marks"].items():
        if at is None:
            continue
        for axis in (top, bottom):
            axis.axvline(at - start, color=styles[mark], linestyle="--", linewidth=1)
        top.annotate(mark, (at - start, top.get_ylim()[1]), rotation=90, va="top", fontsize=8)
    figure.suptitle(summary["title"], fontsize=10)
    figure.tight_layout()
    path = drill_dir / "timeline.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _cell(value: Any) -> str:
    return "-" if value in (None, "", []) else str(value)


def markdown(summaries: list[dict[str, Any]], report_dir: Path) -> str:
    rows = [
        "| drill | result | alert | fire (budget) s | notified | notify (budget) s | resolve s "
        "| requests (failed) | checkouts: attempted / confirmed / in db / paid | mails | "
        "discrepancies | pages (deserved) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        books = s.get("books") or {}
        pages = ", ".join(
            f"{p['alert']} ({'yes' if p['deserved'] else 'NO'})" for p in s.get("pages", [])
        )
        rows.append(
            f"| {s['drill']} | {'pass' if s['passed'] else 'FAIL'} | {_cell(s.get('alert'))} "
            f"| {_cell(s.get('seconds_to_fire'))} ({_cell(s.get('fire_budget_s'))}) "
            f"| {_cell(s.get('notified_receiver'))} "
            f"| {_cell(s.get('seconds_to_notify'))} ({_cell(s.get('notify_budget_s'))}) "
            f"| {_cell(s.get('seconds_to_resolve'))} "
            f"| {_cell(books.get('requests_sent'))} ({_cell(books.get('requests_failed'))}) "
            f"| {_cell(books.get('checkouts_attempted'))}"
            f" / {_cell(books.get('checkouts_confirmed'))}"
            f" / {_cell(books.get('orders_in_database'))} / {_cell(books.get('orders_paid'))} "
            f"| {_cell(books.get('mails_sent_or_queued'))} "
            f"| {len(books.get('discrepancies', [])) if books else '-'} | {pages or 'none'} |"
        )
    text = ["# Fault drills", "", *rows, ""]
    for s in summaries:
        text += [f"## {s['drill']}", "", s.get("title", ""), ""]
        if s.get("problems"):
            text += ["Problems:", "", *[f"- {p}" for p in s["problems"]], ""]
        if s.get("tickets"):
            text += [f"Tickets: {', '.join(s['tickets'])}", ""]
        if s.get("mitigation"):
            text += [f"Mitigation: {s['mitigation']} (exit {s['mitigation_exit']})", ""]
        if (report_dir / s["drill"] / "timeline.png").exists():
            text += [f"![timeline]({s['drill']}/timeline.png)", ""]
    text += [
        "## Alerts and the drills that fire them",
        "",
        "| alert | severity | drilled by |",
        "|---|---|---|",
    ]
    text += [f"| {alert} | {severity} | {by} |" for alert, severity, by in coverage.rows()]
    return "\n".join(text) + "\n"


def build(report_dir: Path, names: list[str]) -> list[dict[str, Any]]:
    summaries = []
    for name in names:
        summary = summarise(name, report_dir / name)
        if (report_dir / name).exists():
            plot_timeline(summary, report_dir / name)
        summaries.append(summary)
    (report_dir / "drills.json").write_text(
        json.dumps(summaries, indent=2) + "\n", encoding="utf-8"
    )
    (report_dir / "drills.md").write_text(markdown(summaries, report_dir), encoding="utf-8")
    return summaries
