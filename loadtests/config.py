"""Load profiles: read and validate loadtests/profiles.yml, and parse durations.

Profiles hold traffic (rps, ramps, durations); the latency and error targets
are not here but in monitoring/slos.yml (see loadtests.gates).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PROFILES_FILE = PACKAGE_DIR / "profiles.yml"


class ConfigError(ValueError):
    """A profile, duration or override that cannot be used; the message names the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Traffic(_Model):
    think_time_s: tuple[float, float]
    logged_in_share: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _think_range(self) -> Traffic:
        low, high = self.think_time_s
        if low < 0 or high < low or high == 0:
            raise ValueError("think_time_s must be [min, max] with 0 <= min <= max and max > 0")
        return self

    @property
    def mean_think_s(self) -> float:
        low, high = self.think_time_s
        return (low + high) / 2

    def shoppers_for(self, rps: float) -> int:
        """Closed-loop shoppers needed to offer `rps` (one request per think time each)."""
        return max(1, math.ceil(rps * self.mean_think_s))


class _Profile(_Model):
    description: str
    # A phase whose achieved rps falls below this share of the offered rps did not
    # really carry the load (the generator or the target could not keep up).
    min_throughput: float = Field(default=0.8, gt=0, le=1)


class SteadyProfile(_Profile):
    shape: Literal["steady"]
    rps: float = Field(gt=0)
    ramp_s: float = Field(ge=0)
    hold_s: float = Field(gt=0)


class SpikeProfile(_Profile):
    shape: Literal["spike"]
    rps: float = Field(gt=0)
    spike_rps: float = Field(gt=0)
    before_s: float = Field(gt=0)
    spike_ramp_s: float = Field(ge=0)
    spike_s: float = Field(gt=0)
    after_s: float = Field(gt=0)


class StepProfile(_Profile):
    shape: Literal["step"]
    start_rps: float = Field(gt=0)
    step_rps: float = Field(gt=0)
    steps: int = Field(ge=2)
    step_s: float = Field(gt=0)
    settle_s: float = Field(ge=0)
    spawn_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _settle_inside_step(self) -> StepProfile:
        if self.settle_s >= self.step_s or self.spawn_s > self.settle_s:
            raise ValueError("need spawn_s <= settle_s < step_s")
        return self

    def step_rps_at(self, index: int) -> float:
        return self.start_rps + index * self.step_rps


Profile = Annotated[SteadyProfile | SpikeProfile | StepProfile, Field(discriminator="shape")]


class ProfileBook(_Model):
    traffic: Traffic
    profiles: dict[str, Profile]
    aliases: dict[str, str] = {}

    @model_validator(mode="after")
    def _peak_and_aliases(self) -> ProfileBook:
        peak = self.profiles.get("peak")
        if not isinstance(peak, SteadyProfile):
            raise ValueError(
                "a steady profile named 'peak' must exist (its rps is the peak target)"
            )
        for alias, target in self.aliases.items():
            if target not in self.profiles:
                raise ValueError(f"alias {alias!r} points to unknown profile {target!r}")
        return self

    @property
    def peak_rps(self) -> float:
        peak = self.profiles["peak"]
        assert isinstance(peak, SteadyProfile)
        return peak.rps

    def names(self) -> list[str]:
        return sorted([*self.profiles, *self.aliases])

    def resolve(self, name: str) -> tuple[str, Profile]:
        """The canonical name and the profile for `name` (a profile or an alias)."""
        canonical = self.aliases.get(name, name)
        if canonical not in self.profiles:
            raise ConfigError(
                f"unknown profile {name!r}; known profiles: {', '.join(self.names())}"
            )
        return canonical, self.profiles[canonical]

    def with_overrides(self, name: str, settings: dict[str, str]) -> Profile:
        """The named profile with some fields replaced (`--set step_s=20`), validated again."""
        _, profile = self.resolve(name)
        if not settings:
            return profile
        fields = type(profile).model_fields
        unknown = sorted(set(settings) - set(fields) - {"shape"})
        if unknown:
            raise ConfigError(
                f"profile {name!r} has no field {', '.join(unknown)}; "
                f"fields: {', '.join(f for f in fields if f != 'shape')}"
            )
        if "shape" in settings:
            raise ConfigError("the shape of a profile cannot be overridden; pick another profile")
        try:
            return type(profile).model_validate({**profile.model_dump(), **settings})
        except ValidationError as exc:
            raise ConfigError(f"profile {name!r} with {settings}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def load_profiles(path: Path = PROFILES_FILE) -> ProfileBook:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read profiles file {path}: {exc.strerror}") from None
    try:
        return ProfileBook.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """Seconds in `text`: "90", "90s", "2m", "1h30m", "1.5m". Raises ConfigError otherwise."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    else:
        parts = _DURATION_PART.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise ConfigError(f"duration {text!r} is not like 90, 90s, 2m or 1h30m")
        units = [u for _, u in parts]
        if len(set(units)) != len(units) or units != sorted(units, key="hms".index):
            raise ConfigError(
                f"duration {text!r}: give each of h, m, s at most once, in that order"
            )
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be more than zero")
    return seconds
