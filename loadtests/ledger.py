"""What the load generator was told, answer by answer: the drills' record of the customers.

With LOADTEST_LEDGER_DIR set, the Locust process appends one JSON line per request to
requests.jsonl (when it started, its name, status, whether it failed, how long it took)
and one per checkout event to checkouts.jsonl: `attempted` with the attempt's
Idempotency-Key, then `confirmed` with the order id once the shop answered 201, or
`pending` once it answered 202 (placed, the payment provider's answer lost: the shop's
reconciler settles it later). A checkout attempted and neither confirmed nor pending is
one the customer saw fail. After a fault the drills hold these against the database and
the payment ledgers (drills/integrity.py): every order a customer was told succeeded must
exist exactly once and be paid; every pending one must have been settled.

Lines are written and flushed one by one, so a run stopped early leaves a whole record.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

LEDGER_ENV = "LOADTEST_LEDGER_DIR"
REQUESTS_FILE = "requests.jsonl"
CHECKOUTS_FILE = "checkouts.jsonl"


class Ledger:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._requests = (folder / REQUESTS_FILE).open("a", encoding="utf-8")
        self._checkouts = (folder / CHECKOUTS_FILE).open("a", encoding="utf-8")

    def _write(self, stream: Any, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            stream.write(line)
            stream.flush()

    def request(self, name: str, started: float, ms: float, status: int, error: str | None) -> None:
        entry = {"t": round(started, 3), "name": name, "status": status, "ms": round(ms, 1)}
        if error:
            entry["error"] = error[:200]
        self._write(self._requests, entry)

    def checkout_attempted(self, key: str) -> None:
        self._write(self._checkouts, {"t": time.time(), "event": "attempted", "key": key})

    def _checkout_answered(self, event: str, key: str, order_id: int) -> None:
        entry = {"t": time.time(), "event": event, "key": key, "order_id": order_id}
        self._write(self._checkouts, entry)

    def checkout_confirmed(self, key: str, order_id: int) -> None:
        self._checkout_answered("confirmed", key, order_id)

    def checkout_pending(self, key: str, order_id: int) -> None:
        self._checkout_answered("pending", key, order_id)


def from_env() -> Ledger | None:
    folder = os.environ.get(LEDGER_ENV)
    return Ledger(Path(folder)) if folder else None


def unavailable(entry: dict[str, Any]) -> bool:
    """The shop did not serve it: no answer, or a 5xx (what the availability SLO counts).
    A 4xx the journey did not expect (a fraud block, say) is a refusal, not an outage."""
    return bool(entry.get("error")) and (entry["status"] == 0 or entry["status"] >= 500)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    # the last line may be cut short by a process killed mid-write
    return [json.loads(line) for line in lines if line.endswith("}")]
