"""The lab's pager: a webhook receiver that records every notification Alertmanager sends,
and a dead man's switch on the Watchdog heartbeat.

In production Alertmanager delivers pages and tickets to outside services (the SNS topic
on AWS, a pager, a ticket queue); in the lab this process stands in for all of them, on
the monitoring host's loopback, so that a drill can ask "did the page arrive, with which
severity and runbook link, and was the InstanceDown page inhibited?". It keeps to the
standard library: the monitoring host runs it with Debian's python3, no venv.

- POST /hooks/<receiver>: an Alertmanager webhook (payload version 4), appended to the
  store (one JSON line per notification, so a restart loses nothing).
- GET /notifications: one row per alert per notification, oldest first; filters
  `receiver`, `alertname`, `status` and `since` (Unix seconds, on the time received).
- GET /heartbeat: when the Watchdog last arrived and whether the switch has tripped.
- The switch: once a heartbeat has arrived, if none arrives for `--heartbeat-deadline`
  seconds, the sink records a page of its own (alertname WatchdogMissing, receiver
  pager), and its resolution when heartbeats return. Alertmanager cannot send that page
  itself: its absence is the thing to report.

Run: python3 alert_sink.py --listen 127.0.0.1:9095 --store /var/lib/alert-sink/notifications.jsonl
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HEARTBEAT_RECEIVER = "heartbeat"
SWITCH_ALERT = "WatchdogMissing"
MAX_BODY_BYTES = 4 * 1024 * 1024


class NotificationStore:
    """Notifications as JSON lines in one file; rows are read back from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self._lock = threading.Lock()

    def append(self, receiver: str, payload: dict[str, Any], *, source: str) -> None:
        record = {
            "received_at": time.time(),
            "receiver": receiver,
            "source": source,
            "payload": payload,
        }
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as store:
            store.write(line)
            store.flush()

    def rows(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        since = float(filters.get("since", "0") or 0)
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        found = []
        for line in lines:
            record = json.loads(line)
            if record["received_at"] < since:
                continue
            for row in _rows_of(record):
                if all(row.get(key) == value for key, value in filters.items() if key != "since"):
                    found.append(row)
        return found


def _rows_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    payload = record["payload"]
    rows = []
    for alert in payload.get("alerts", []):
        labels = alert.get("labels", {})
        rows.append(
            {
                "received_at": record["received_at"],
                "receiver": record["receiver"],
                "source": record["source"],
                "status": alert.get("status", payload.get("status", "")),
                "alertname": labels.get("alertname", ""),
                "severity": labels.get("severity", ""),
                "labels": labels,
                "runbook_url": alert.get("annotations", {}).get("runbook_url", ""),
                "starts_at": alert.get("startsAt", ""),
                "group_key": payload.get("groupKey", ""),
            }
        )
    return rows


class DeadMansSwitch:
    """Trips when the heartbeat stops; records the page and its resolution in the store."""

    def __init__(self, store: NotificationStore, deadline_s: float, runbook_url: str = "") -> None:
        self.store = store
        self.deadline_s = deadline_s
        self.runbook_url = runbook_url
        self.last_beat: float | None = None
        self.tripped = False
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self.last_beat = time.time()
            if self.tripped:
                self.tripped = False
                self._record("resolved")

    def check(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            late = self.last_beat is not None and now - self.last_beat > self.deadline_s
            if late and not self.tripped:
                self.tripped = True
                self._record("firing")

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "last_beat": self.last_beat,
                "deadline_seconds": self.deadline_s,
                "tripped": self.tripped,
            }

    def _record(self, status: str) -> None:
        alert = {
            "status": status,
            "labels": {"alertname": SWITCH_ALERT, "severity": "page"},
            "annotations": {
                "summary": f"no Watchdog heartbeat for more than {self.deadline_s:.0f} s: "
                "Prometheus, Alertmanager or the path between them is down",
                "runbook_url": self.runbook_url,
            },
        }
        payload = {"version": "4", "status": status, "alerts": [alert]}
        self.store.append("pager", payload, source="dead-mans-switch")


def handler_for(store: NotificationStore, switch: DeadMansSwitch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "alert-sink"

        def do_POST(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "hooks" or not parts[1]:
                return self._answer(HTTPStatus.NOT_FOUND, {"error": "POST /hooks/<receiver>"})
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY_BYTES:
                return self._answer(HTTPStatus.BAD_REQUEST, {"error": "a JSON body is needed"})
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                return self._answer(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
                return self._answer(
                    HTTPStatus.BAD_REQUEST, {"error": "not an Alertmanager webhook payload"}
                )
            store.append(parts[1], payload, source="alertmanager")
            if parts[1] == HEARTBEAT_RECEIVER:
                switch.beat()
            return self._answer(HTTPStatus.OK, {"status": "recorded"})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/notifications":
                filters = {key: values[-1] for key, values in parse_qs(url.query).items()}
                try:
                    rows = store.rows(filters)
                except ValueError:
                    return self._answer(HTTPStatus.BAD_REQUEST, {"error": "since: Unix seconds"})
                return self._answer(HTTPStatus.OK, {"notifications": rows})
            if url.path == "/heartbeat":
                return self._answer(HTTPStatus.OK, switch.state())
            if url.path == "/healthz":
                return self._answer(HTTPStatus.OK, {"status": "ok"})
            return self._answer(HTTPStatus.NOT_FOUND, {"error": f"no {url.path}"})

        def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the store is the record; journald needs no line per request

    return Handler


def serve(
    listen: str, store_path: Path, deadline_s: float, check_every_s: float, runbook_url: str
) -> None:
    host, _, port = listen.rpartition(":")
    store = NotificationStore(store_path)
    switch = DeadMansSwitch(store, deadline_s, runbook_url)
    server = ThreadingHTTPServer((host, int(port)), handler_for(store, switch))

    def watch() -> None:
        while True:
            time.sleep(check_every_s)
            switch.check()

    threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:9095", help="host:port")
    parser.add_argument("--store", type=Path, required=True, help="the JSON-lines file")
    parser.add_argument(
        "--heartbeat-deadline",
        type=float,
        default=180,
        help="seconds without a Watchdog heartbeat before the switch pages",
    )
    parser.add_argument("--check-every", type=float, default=5, help="seconds between checks")
    parser.add_argument("--runbook-url", default="", help="the Watchdog runbook, for its page")
    args = parser.parse_args(argv)
    serve(args.listen, args.store, args.heartbeat_deadline, args.check_every, args.runbook_url)


if __name__ == "__main__":
    main()
