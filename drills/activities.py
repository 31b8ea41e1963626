"""What the experiments (drills/experiments/*.yaml) call: Chaos Toolkit python actions and
probes. Each takes the experiment's `configuration` (drill name and folder) and returns
what the journal should keep: the report is built from those outputs.

Times are Unix seconds. A wait that runs past its budget raises, which fails the activity
and, through drills/run.py's verdict, the drill.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from loadtests import ledger
from loadtests.config import parse_duration

from . import faults, integrity, lab_access, load, runbook

POLL_S = 5.0
RULES_DIR = lab_access.REPO / "monitoring" / "rules"
ROUTING_FILE = lab_access.REPO / "monitoring" / "alertmanager" / "alertmanager.yml"


class DrillFailed(AssertionError):
    pass


# --- the drill's own record -------------------------------------------------------------


def _drill_dir(configuration: dict[str, Any]) -> Path:
    folder = Path(configuration["drill_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state(configuration: dict[str, Any]) -> dict[str, Any]:
    path = _drill_dir(configuration) / "state.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _remember(configuration: dict[str, Any], **values: Any) -> None:
    path = _drill_dir(configuration) / "state.json"
    path.write_text(json.dumps({**_state(configuration), **values}, indent=2), encoding="utf-8")


def _fault_at(configuration: dict[str, Any]) -> float:
    at = _state(configuration).get("fault_at")
    if at is None:
        raise DrillFailed("the fault was never brought")
    return float(at)


def _step(activity: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A step of the drill's story: skipped once an earlier one failed (the rollbacks
    still clear the fault), and its own failure recorded for the steps after it."""

    @functools.wraps(activity)
    def step(*args: Any, configuration: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        failed = _state(configuration).get("failed")
        if failed:
            raise DrillFailed(f"skipped: {failed}")
        try:
            return activity(*args, configuration=configuration, **kwargs)
        except Exception as error:
            _remember(configuration, failed=f"{activity.__name__}: {error}")
            raise

    return step


# --- budgets from the rules and the routing ---------------------------------------------


@cache
def alert_rules() -> tuple[dict[str, Any], ...]:
    """Every alerting rule of monitoring/rules, as the lab's Prometheus loads them."""
    rules: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += [rule for rule in group["rules"] if "alert" in rule]
    return tuple(rules)


def alert_rule(alert: str) -> dict[str, Any]:
    for rule in alert_rules():
        if rule["alert"] == alert:
            return rule
    raise DrillFailed(f"no alert rule {alert} in {RULES_DIR}")


def _intervals() -> tuple[float, float, float]:
    """Prometheus's scrape interval, scrape timeout and evaluation interval in the lab."""
    config = yaml.safe_load(lab_access.prometheus("api/v1/status/config")["yaml"])["global"]
    return (
        parse_duration(config["scrape_interval"]),
        parse_duration(config["scrape_timeout"]),
        parse_duration(config["evaluation_interval"]),
    )


def fire_budget_s(alert: str, onset_s: float = 0.0) -> float:
    """The latest an alert may fire after its fault: `onset_s` for the fault to show in the
    metric (a rate's window, a breaker opening), the next scrape and its timeout (a host
    that is gone answers nothing), an evaluation to turn pending, its `for`, one more
    evaluation to fire, and our polling."""
    scrape, scrape_timeout, evaluation = _intervals()
    hold = parse_duration(alert_rule(alert)["for"]) if "for" in alert_rule(alert) else 0.0
    return onset_s + scrape + scrape_timeout + 2 * evaluation + hold + POLL_S


def group_wait_s(severity: str) -> float:
    routing = yaml.safe_load(ROUTING_FILE.read_text(encoding="utf-8"))["route"]
    for route in routing.get("routes", []):
        if f'severity="{severity}"' in route.get("matchers", []):
            return parse_duration(route.get("group_wait", routing.get("group_wait", "30s")))
    return parse_duration(routing.get("group_wait", "30s"))


# --- the load ---------------------------------------------------------------------------


def start_load(configuration: dict[str, Any], warm_up_s: float = 30) -> dict[str, Any]:
    started = load.start(_drill_dir(configuration))
    _remember(configuration, load_started_at=started["started_at"])
    time.sleep(warm_up_s)
    if not load.is_running(_drill_dir(configuration)):
        log = _drill_dir(configuration) / "load" / "locust.log"
        raise DrillFailed(f"the load stopped during its warm-up: {log.read_text()[-2000:]}")
    return started


def stop_load(configuration: dict[str, Any], settle_s: float = 0) -> dict[str, Any]:
    stopped = load.stop(_drill_dir(configuration))
    if stopped.get("stopped"):
        _remember(configuration, load_stopped_at=stopped["stopped_at"])
        time.sleep(settle_s)  # checkouts in flight finish, the outbox sends
    return stopped


# --- the fault --------------------------------------------------------------------------


def bring_fault(fault: str, configuration: dict[str, Any]) -> dict[str, Any]:
    chosen = faults.get(fault)
    chosen.bring()
    at = time.time()
    _remember(configuration, fault=fault, fault_at=at)
    return {"fault": fault, "description": chosen.description, "at": at}


def clear_fault(fault: str, configuration: dict[str, Any]) -> dict[str, Any]:
    faults.get(fault).clear()
    at = time.time()
    _remember(configuration, cleared_at=at)
    return {"fault": fault, "cleared_at": at}


# --- alerts and pages -------------------------------------------------------------------


def _matches(labels: dict[str, str], wanted: dict[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


def _firing(alert: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        a
        for a in lab_access.prometheus_alerts()
        if a["labels"].get("alertname") == alert
        and a["state"] == "firing"
        and _matches(a["labels"], labels)
    ]


@_step
def wait_for_alert(
    alert: str,
    configuration: dict[str, Any],
    onset_s: float = 0.0,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Until `alert` fires in Prometheus; past its budget the drill fails."""
    fault_at = _fault_at(configuration)
    budget = fire_budget_s(alert, onset_s)
    _remember(configuration, **{f"fire_budget_{alert}": budget})
    while True:
        firing = _firing(alert, labels)
        now = time.time()
        if firing:
            return {
                "alert": alert,
                "fired_seen_at": now,
                "seconds_to_fire": round(now - fault_at, 1),
                "budget_s": round(budget, 1),
                "labels": firing[0]["labels"],
            }
        if now - fault_at > budget:
            raise DrillFailed(f"{alert} did not fire within its budget of {budget:.0f} s")
        time.sleep(POLL_S)


@_step
def wait_for_notification(
    alert: str,
    receiver: str,
    configuration: dict[str, Any],
    slack_s: float = 60.0,
) -> dict[str, Any]:
    """Until the lab's pager holds `alert` for `receiver`, with the severity the routing
    sends there and a runbook link that opens; its budget: the fire budget wait_for_alert
    used, the route's group_wait and `slack_s`."""
    fault_at = _fault_at(configuration)
    severity = alert_rule(alert)["labels"]["severity"]
    budget = _state(configuration).get(f"fire_budget_{alert}") or fire_budget_s(alert)
    budget += group_wait_s(severity) + slack_s
    while True:
        rows = [
            r
            for r in lab_access.notifications(receiver=receiver, alertname=alert, status="firing")
            if r["received_at"] >= fault_at
        ]
        now = time.time()
        if rows:
            row = rows[0]
            if row["severity"] != severity:
                raise DrillFailed(
                    f"{alert} reached {receiver} as {row['severity']}, not {severity}"
                )
            link_status = lab_access.open_link(row["runbook_url"])
            if link_status != 200:
                raise DrillFailed(f"{alert}'s runbook link {row['runbook_url']}: {link_status}")
            return {
                "alert": alert,
                "receiver": receiver,
                "severity": severity,
                "received_at": row["received_at"],
                "seconds_to_notify": round(row["received_at"] - fault_at, 1),
                "budget_s": round(budget, 1),
                "runbook_url": row["runbook_url"],
            }
        if now - fault_at > budget:
            raise DrillFailed(f"no {alert} notification reached {receiver} in {budget:.0f} s")
        time.sleep(POLL_S)


@_step
def wait_for_inhibition(
    alert: str,
    by: str,
    configuration: dict[str, Any],
    labels: dict[str, str] | None = None,
    onset_s: float = 0.0,
) -> dict[str, Any]:
    """Until Alertmanager holds `alert` (matching `labels`) suppressed by `by`; and the
    pager never received it."""
    fault_at = _fault_at(configuration)
    budget = fire_budget_s(alert, onset_s) + 30
    while True:
        held = [a for a in lab_access.alertmanager_alerts(alert) if _matches(a["labels"], labels)]
        inhibited = [
            a for a in held if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
        ]
        now = time.time()
        if inhibited:
            break
        active = [a for a in held if a["status"]["state"] == "active"]
        if active:
            raise DrillFailed(f"{alert} {active[0]['labels']} is active, not inhibited by {by}")
        if now - fault_at > budget:
            raise DrillFailed(f"{alert} never reached Alertmanager in {budget:.0f} s")
        time.sleep(POLL_S)
    delivered = [
        r for r in lab_access.notifications(alertname=alert) if r["received_at"] >= fault_at
    ]
    if delivered:
        raise DrillFailed(f"{alert} was inhibited yet {len(delivered)} notification(s) went out")
    return {"alert": alert, "inhibited_by": by, "seen_at": now, "count": len(inhibited)}


@_step
def assert_not_notified(
    configuration: dict[str, Any],
    alerts: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """No receiver was told of any of `alerts` firing (matching `labels`; without
    `alerts`, any alert but the Watchdog) since the fault: another alert owns this fault,
    or customers feel nothing and nobody should be told. The resolution of an alert that
    fired before the fault is not news of this one."""
    fault_at = _fault_at(configuration)
    delivered = [
        (r["alertname"], r["receiver"])
        for r in lab_access.notifications(status="firing")
        if r["received_at"] >= fault_at
        and r["alertname"] != "Watchdog"
        and (alerts is None or r["alertname"] in alerts)
        and _matches(r["labels"], labels)
    ]
    if delivered:
        raise DrillFailed(f"notified, and should not have been: {delivered}")
    return {"alerts": alerts or "any", "labels": labels or {}, "delivered": 0}


@_step
def hold(seconds: float, configuration: dict[str, Any]) -> dict[str, Any]:
    """Keep the fault under load for `seconds` (long enough for what should stay quiet to
    have fired if it were wrong)."""
    time.sleep(seconds)
    return {"held_s": seconds}


@_step
def wait_for_query(
    expr: str, budget_s: float, configuration: dict[str, Any], since: str = "fault"
) -> dict[str, Any]:
    """Until the PromQL `expr` returns a sample, within `budget_s` of the fault (or, with
    `since: now`, of this step's start)."""
    started = _fault_at(configuration) if since == "fault" else time.time()
    while True:
        result = lab_access.query(expr)
        now = time.time()
        if result:
            return {
                "expr": expr,
                "seen_at": now,
                "seconds": round(now - started, 1),
                "budget_s": budget_s,
                "value": result[0]["value"][1],
            }
        if now - started > budget_s:
            raise DrillFailed(f"{expr!r} returned nothing within {budget_s:.0f} s")
        time.sleep(POLL_S)


@_step
def wait_until_resolved(
    alerts: list[str], configuration: dict[str, Any], timeout_s: float = 600
) -> dict[str, Any]:
    """Until none of `alerts` is pending or firing in Prometheus."""
    started = time.time()
    while True:
        left = sorted(
            {a["labels"]["alertname"] for a in lab_access.prometheus_alerts()} & set(alerts)
        )
        now = time.time()
        if not left:
            _remember(configuration, resolved_at=now)
            return {"alerts": alerts, "resolved_at": now, "seconds": round(now - started, 1)}
        if now - started > timeout_s:
            raise DrillFailed(f"still pending or firing after {timeout_s:.0f} s: {left}")
        time.sleep(POLL_S)


@_step
def wait_until_settled(configuration: dict[str, Any], budget_s: float = 300) -> dict[str, Any]:
    """Until every order the customers were told is pending (202) has been settled by the
    shop's reconciler (it takes those older than its settle-after, 120 s, every 30 s)."""
    load_dir = _drill_dir(configuration) / "load"
    started = time.time()
    while True:
        left = integrity.unsettled(load_dir)
        now = time.time()
        if not left:
            return {"seconds": round(now - started, 1), "budget_s": budget_s}
        if now - started > budget_s:
            raise DrillFailed(
                f"{len(left)} pending orders unsettled after {budget_s:.0f} s: {left[:10]}"
            )
        time.sleep(POLL_S)


@_step
def run_mitigation(
    runbook_page: str, block: int, expect: str, configuration: dict[str, Any]
) -> dict[str, Any]:
    outcome = runbook.run_mitigation(runbook_page, block, expect)
    _remember(configuration, mitigated_at=outcome["started_at"])
    return outcome


# --- steady state -----------------------------------------------------------------------


def alerts_quiet(alerts: list[str], wait_s: float = 360) -> bool:
    """None of `alerts` pending or firing, within `wait_s` (what an earlier fault left in
    a rate's window clears by itself)."""
    deadline = time.time() + wait_s
    while True:
        names = {a["labels"]["alertname"] for a in lab_access.prometheus_alerts()}
        if not names & set(alerts):
            return True
        if time.time() > deadline:
            return False
        time.sleep(POLL_S)


def shop_answers() -> bool:
    """The storefront answers through the edge."""
    with lab_access.monitoring() as session:
        session.auth = None
        answer = session.get(lab_access.url("edge_https") + "api/products?page_size=1", timeout=10)
    return answer.status_code == 200


def failed_request_ratio(configuration: dict[str, Any]) -> float:
    """Requests the shop did not serve (no answer, a 5xx) / requests the shoppers sent,
    over the whole drill; refusals (a 4xx such as a fraud block) are the shop working."""
    lines = ledger.read_lines(_drill_dir(configuration) / "load" / ledger.REQUESTS_FILE)
    if not lines:
        raise DrillFailed("the load recorded no request")
    return sum(1 for r in lines if ledger.unavailable(r)) / len(lines)


def orders_accounted(configuration: dict[str, Any], mail_delivered: bool = False) -> int:
    """How many discrepancies the books show (integrity.py); 0 is the only good answer."""
    books = integrity.account(_drill_dir(configuration) / "load", mail_delivered)
    integrity.write(books, _drill_dir(configuration) / "accounting.json")
    return len(books.discrepancies)


def pages_received(configuration: dict[str, Any]) -> list[dict[str, Any]]:
    """Every notification since the fault (what a human would have received)."""
    fault_at = _fault_at(configuration)
    rows = [
        {k: r[k] for k in ("received_at", "receiver", "status", "severity", "alertname", "labels")}
        for r in lab_access.notifications()
        if r["received_at"] >= fault_at and r["alertname"] != "Watchdog"
    ]
    (_drill_dir(configuration) / "notifications.json").write_text(
        json.dumps(rows, indent=2), encoding="utf-8"
    )
    return rows


def assert_failed_ratio_at_most(max_ratio: float, configuration: dict[str, Any]) -> dict[str, Any]:
    ratio = failed_request_ratio(configuration)
    if ratio > max_ratio:
        raise DrillFailed(f"{ratio:.2%} of the shoppers' requests failed (at most {max_ratio:.2%})")
    return {"failed_ratio": ratio, "max_ratio": max_ratio}


def assert_failures_fast(
    max_ms: float, statuses: list[int], configuration: dict[str, Any]
) -> dict[str, Any]:
    """Every failed request was answered, quickly, with one of `statuses` (a fast 503,
    not a hang or a 500)."""
    lines = ledger.read_lines(_drill_dir(configuration) / "load" / ledger.REQUESTS_FILE)
    failed = [r for r in lines if ledger.unavailable(r)]
    wrong = [r for r in failed if r["status"] not in statuses or r["ms"] > max_ms]
    if wrong:
        sample = [(r["name"], r["status"], r["ms"]) for r in wrong[:10]]
        raise DrillFailed(
            f"{len(wrong)} of {len(failed)} failed requests were not {statuses} "
            f"within {max_ms:.0f} ms: {sample}"
        )
    slowest = max((r["ms"] for r in failed), default=0.0)
    return {"failed": len(failed), "statuses": statuses, "slowest_ms": slowest}


def assert_orders_accounted(
    configuration: dict[str, Any], mail_delivered: bool = False
) -> dict[str, Any]:
    """No discrepancy in the books; with `mail_delivered`, every confirmation mail has been
    sent (a mail still queued is a discrepancy: after a mail outage, the outbox drained)."""
    count = orders_accounted(configuration, mail_delivered)
    books = json.loads((_drill_dir(configuration) / "accounting.json").read_text(encoding="utf-8"))
    if count:
        raise DrillFailed(f"{count} discrepancies: {books['discrepancies'][:10]}")
    return books
