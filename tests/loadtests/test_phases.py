"""Profiles become the phase plan the load shape follows."""

from __future__ import annotations

import pytest

from loadtests.config import SpikeProfile, SteadyProfile, StepProfile, Traffic, load_profiles
from loadtests.phases import natural_duration_s, phase_at, plan

TRAFFIC = Traffic(think_time_s=(0.5, 1.5), logged_in_share=0.25)


def test_shoppers_follow_the_offered_rps():
    assert TRAFFIC.shoppers_for(40) == 40  # one request per 1 s mean think time
    assert Traffic(think_time_s=(1, 3), logged_in_share=0).shoppers_for(10) == 20
    assert TRAFFIC.shoppers_for(0.1) == 1


def test_steady_ramps_then_holds_and_measures_only_the_hold():
    profile = SteadyProfile(shape="steady", description="", rps=20, ramp_s=10, hold_s=50)
    ramp, hold = plan(profile, TRAFFIC)
    assert (ramp.start_s, ramp.end_s, ramp.measure_from_s) == (0, 10, None)
    assert (hold.start_s, hold.end_s, hold.measure_from_s) == (10, 60, 10)
    assert ramp.users == hold.users == 20
    assert ramp.spawn_rate == hold.spawn_rate == 2.0  # same tick: Locust is not re-dispatched
    assert hold.offered_rps == 20


def test_step_adds_load_per_step_and_skips_the_settle_time():
    profile = StepProfile(
        shape="step",
        description="",
        start_rps=10,
        step_rps=5,
        steps=4,
        step_s=30,
        settle_s=10,
        spawn_s=5,
    )
    phases = plan(profile, TRAFFIC)
    assert [p.users for p in phases] == [10, 15, 20, 25]
    assert [p.step_index for p in phases] == [0, 1, 2, 3]
    assert [p.measure_from_s for p in phases] == [10, 40, 70, 100]
    assert phases[1].spawn_rate == 1.0  # 5 more shoppers over 5 s
    assert phases[-1].end_s == 120


def test_duration_scales_every_phase_and_keeps_the_steps():
    profile = load_profiles().profiles["step"]
    assert isinstance(profile, StepProfile)
    phases = plan(profile, TRAFFIC, duration_s=natural_duration_s(profile) / 10)
    assert len(phases) == profile.steps
    assert phases[-1].end_s == pytest.approx(natural_duration_s(profile) / 10)
    first = phases[0]
    assert first.measure_from_s == pytest.approx(profile.settle_s / 10)


def test_spike_jumps_and_recovers():
    profile = SpikeProfile(
        shape="spike",
        description="",
        rps=10,
        spike_rps=80,
        before_s=40,
        spike_ramp_s=4,
        spike_s=20,
        after_s=30,
    )
    before, spike, after = plan(profile, TRAFFIC)
    assert (before.users, spike.users, after.users) == (10, 80, 10)
    assert spike.spawn_rate == pytest.approx(70 / 4)
    assert spike.measure_from_s == 44
    assert after.measure_from_s == after.start_s == 64  # recovery is measured from its start


def test_phase_at_ends_the_run_after_the_last_phase():
    profile = SteadyProfile(shape="steady", description="", rps=2, ramp_s=0, hold_s=5)
    phases = plan(profile, TRAFFIC)
    assert len(phases) == 1  # no empty ramp
    assert phase_at(phases, 0).label == "hold"
    assert phase_at(phases, 4.99).label == "hold"
    assert phase_at(phases, 5) is None


def test_every_shipped_profile_plans():
    book = load_profiles()
    for name, profile in book.profiles.items():
        phases = plan(profile, book.traffic)
        assert phases, name
        assert any(p.measure_from_s is not None for p in phases), name
        assert all(p.start_s < p.end_s for p in phases), name
