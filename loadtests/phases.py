"""Turn a profile into a timeline of phases: how many shoppers, from when, measured from when.

The Locust load shape (loadtests.shape) follows this plan second by second, and
the recorder measures each phase's window from `measure_from_s` to `end_s`, so
ramps and step transients never pollute a step's figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.config import Profile, SpikeProfile, SteadyProfile, StepProfile, Traffic


@dataclass(frozen=True)
class Phase:
    label: str
    start_s: float
    end_s: float
    users: int  # shoppers to reach in this phase
    spawn_rate: float  # shoppers started (or stopped) per second to get there
    offered_rps: float  # what `users` offer at the mean think time
    measure_from_s: float | None  # start of the measured window; None: not measured
    step_index: int | None = None  # for step profiles: 0, 1, 2, ...


def natural_duration_s(profile: Profile) -> float:
    if isinstance(profile, SteadyProfile):
        return profile.ramp_s + profile.hold_s
    if isinstance(profile, SpikeProfile):
        return profile.before_s + profile.spike_ramp_s + profile.spike_s + profile.after_s
    return profile.steps * profile.step_s


def _spawn_rate(delta_users: int, seconds: float) -> float:
    """Users per second that change the count by `delta_users` within `seconds` (>= 1/s)."""
    delta = abs(delta_users)
    return max(delta / seconds if seconds > 0 else float(delta), 1.0)


def plan(profile: Profile, traffic: Traffic, duration_s: float | None = None) -> list[Phase]:
    """The phases of `profile`; with `duration_s`, every phase is scaled to fit it."""
    scale = 1.0 if duration_s is None else duration_s / natural_duration_s(profile)
    if isinstance(profile, SteadyProfile):
        return _steady(profile, traffic, scale)
    if isinstance(profile, SpikeProfile):
        return _spike(profile, traffic, scale)
    return _steps(profile, traffic, scale)


def _offered(users: int, traffic: Traffic) -> float:
    return users / traffic.mean_think_s


def _steady(profile: SteadyProfile, traffic: Traffic, scale: float) -> list[Phase]:
    users = traffic.shoppers_for(profile.rps)
    ramp_end = profile.ramp_s * scale
    end = ramp_end + profile.hold_s * scale
    phases = []
    if ramp_end > 0:
        phases.append(Phase("ramp", 0.0, ramp_end, users, _spawn_rate(users, ramp_end), 0.0, None))
    offered = _offered(users, traffic)
    phases.append(
        Phase("hold", ramp_end, end, users, _spawn_rate(users, ramp_end), offered, ramp_end)
    )
    return phases


def _spike(profile: SpikeProfile, traffic: Traffic, scale: float) -> list[Phase]:
    base = traffic.shoppers_for(profile.rps)
    peak = traffic.shoppers_for(profile.spike_rps)
    before_end = profile.before_s * scale
    base_ramp = before_end / 4  # the baseline builds up over the first quarter
    spike_ramp = profile.spike_ramp_s * scale
    spike_end = before_end + spike_ramp + profile.spike_s * scale
    end = spike_end + profile.after_s * scale
    return [
        Phase(
            "before",
            0.0,
            before_end,
            base,
            _spawn_rate(base, base_ramp),
            _offered(base, traffic),
            base_ramp,
        ),
        Phase(
            "spike",
            before_end,
            spike_end,
            peak,
            _spawn_rate(peak - base, spike_ramp),
            _offered(peak, traffic),
            before_end + spike_ramp,
        ),
        # Measured from its first second: recovery is what this phase is about.
        Phase(
            "after",
            spike_end,
            end,
            base,
            _spawn_rate(peak - base, 0),
            _offered(base, traffic),
            spike_end,
        ),
    ]


def _steps(profile: StepProfile, traffic: Traffic, scale: float) -> list[Phase]:
    phases = []
    previous_users = 0
    step_s = profile.step_s * scale
    for index in range(profile.steps):
        users = traffic.shoppers_for(profile.step_rps_at(index))
        start = index * step_s
        phases.append(
            Phase(
                f"step {index + 1}",
                start,
                start + step_s,
                users,
                _spawn_rate(users - previous_users, profile.spawn_s * scale),
                _offered(users, traffic),
                start + profile.settle_s * scale,
                step_index=index,
            )
        )
        previous_users = users
    return phases


def phase_at(phases: list[Phase], elapsed_s: float) -> Phase | None:
    """The phase running at `elapsed_s` seconds into the run; None once the plan is over."""
    for phase in phases:
        if phase.start_s <= elapsed_s < phase.end_s:
            return phase
    return None
