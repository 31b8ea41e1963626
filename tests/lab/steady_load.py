"""A steady trickle of customers through the lab's edge, recording every answer.

Used by the fault tests: start it, break something, mend it, then read what the
customers saw (status codes, transport errors and how long each answer took).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Answer:
    path: str
    status: int | None  # None: no HTTP answer (the error says why)
    seconds: float
    error: str | None = None
    at: float = 0.0  # time.monotonic() when the request started


@dataclass
class SteadyLoad:
    """`customers` threads, each asking `paths` in turn with `pause_s` between requests."""

    base_url: str
    verify: object
    paths: Sequence[str]
    customers: int = 4
    pause_s: float = 0.1
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _customer(self, offset: int) -> None:
        with httpx.Client(
            base_url=self.base_url, verify=self.verify, timeout=self.timeout_s, headers=self.headers
        ) as client:
            n = offset
            while not self._stop.is_set():
                path = self.paths[n % len(self.paths)]
                n += 1
                started = time.monotonic()
                try:
                    status, error = client.get(path).status_code, None
                except httpx.HTTPError as exc:
                    status, error = None, repr(exc)
                answer = Answer(path, status, time.monotonic() - started, error, started)
                with self._lock:
                    self.answers.append(answer)
                time.sleep(self.pause_s)

    def __enter__(self) -> SteadyLoad:
        for offset in range(self.customers):
            thread = threading.Thread(target=self._customer, args=(offset,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 5)

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.at >= moment]

    def failed(self) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.status != 200]
