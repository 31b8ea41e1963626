"""Profiles load, validate and refuse bad input with a message that names the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadtests.config import (
    PROFILES_FILE,
    ConfigError,
    SteadyProfile,
    StepProfile,
    load_profiles,
    parse_duration,
)


def test_every_required_profile_exists_and_stress_is_step():
    book = load_profiles()
    for name in ("smoke", "average", "peak", "spike", "soak", "step", "stress"):
        book.resolve(name)
    assert book.resolve("stress")[0] == "step"
    assert isinstance(book.resolve("step")[1], StepProfile)


def test_peak_target_is_the_peak_profiles_rps():
    book = load_profiles()
    peak = book.profiles["peak"]
    assert isinstance(peak, SteadyProfile)
    assert book.peak_rps == peak.rps


def test_profiles_hold_no_slo_numbers():
    """Latency and error targets live in monitoring/slos.yml only."""
    raw = yaml.safe_load(PROFILES_FILE.read_text())
    text = repr(raw)
    for word in ("p95", "p99", "error_ratio", "latency"):
        assert word not in text


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'blackfriday'.*smoke"):
        load_profiles().resolve("blackfriday")


def test_overrides_are_validated_again():
    book = load_profiles()
    step = book.with_overrides("step", {"steps": "3", "step_s": "20"})
    assert isinstance(step, StepProfile)
    assert (step.steps, step.step_s) == (3, 20)
    with pytest.raises(ConfigError, match="no field ramp_s"):
        book.with_overrides("step", {"ramp_s": "3"})
    with pytest.raises(ConfigError, match="settle_s"):
        book.with_overrides("step", {"settle_s": "100", "step_s": "20"})
    with pytest.raises(ConfigError, match="shape"):
        book.with_overrides("smoke", {"shape": "step"})


def test_a_profiles_file_without_peak_is_refused(tmp_path: Path):
    raw = yaml.safe_load(PROFILES_FILE.read_text())
    del raw["profiles"]["peak"]
    broken = tmp_path / "profiles.yml"
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="peak"):
        load_profiles(broken)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("1h30m", 5400), ("1.5m", 90), ("1m30s", 90)],
)
def test_durations(text: str, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "0", "1s2m", "5m5m", "-3s"])
def test_bad_durations_are_refused(text: str):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)
