"""The Locust load shape that plays a profile's phases (loadtests.phases) second by second."""

from __future__ import annotations

from locust import LoadTestShape

from loadtests.phases import Phase, phase_at


class ProfileShape(LoadTestShape):
    """Shoppers and spawn rate of the phase running now; stops the run after the last phase.

    The locustfile hands it the plan at start-up (`phases`); Locust calls `tick`
    every second on the master (or the single local process).
    """

    def __init__(self) -> None:
        super().__init__()
        self.phases: list[Phase] = []

    def tick(self) -> tuple[int, float] | None:
        phase = phase_at(self.phases, self.get_run_time())
        if phase is None:
            return None
        return phase.users, phase.spawn_rate
