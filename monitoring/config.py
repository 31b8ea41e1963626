"""monitoring/config.yml: the selectors and the runbook link every rule shares.

Rule sources refer to them with placeholders that PromQL and Prometheus's own
`{{ ... }}` templates never contain: `[[ shop_selector ]]` is the matcher list of
the `shop` entry of `selectors`, `[[ runbook_url('InstanceDown') ]]` the
`runbook_url` annotation of alert InstanceDown. They are Jinja2 expressions with
`[[ ]]` for `{{ }}` (and `[% %]`, `[# #]` for blocks and comments); an unknown
name is an error, never an empty string.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from monitoring import MONITORING_DIR

CONFIG_FILE = MONITORING_DIR / "config.yml"
ALERT_PLACEHOLDER = "%s"


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    selectors: dict[str, str]
    runbook_url_pattern: str
    runbook_base_url: str

    @field_validator("selectors")
    @classmethod
    def _matchers_without_braces(cls, selectors: dict[str, str]) -> dict[str, str]:
        for name, matchers in selectors.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"selector name {name!r}: lower case, digits and _ only")
            if not matchers.strip() or "{" in matchers or "}" in matchers:
                raise ValueError(f"selector {name}: label matchers without braces, not empty")
        return selectors

    @field_validator("runbook_url_pattern")
    @classmethod
    def _one_alert_placeholder(cls, pattern: str) -> str:
        if pattern.count(ALERT_PLACEHOLDER) != 1 or pattern.count("%") != 1:
            raise ValueError(f"runbook_url_pattern: one {ALERT_PLACEHOLDER} (the alert name)")
        return pattern

    @field_validator("runbook_base_url")
    @classmethod
    def _absolute_url(cls, url: str) -> str:
        if not re.fullmatch(r"https?://\S+[^/]", url):
            raise ValueError("runbook_base_url: an http(s) URL without a trailing /")
        return url

    def runbook_url(self, alert: str) -> str:
        return self.runbook_url_pattern.replace(ALERT_PLACEHOLDER, alert)

    def template_variables(self) -> dict[str, object]:
        """What a rule source may use: `<name>_selector` and `runbook_url(alert)`."""
        variables: dict[str, object] = {
            f"{name}_selector": matchers for name, matchers in self.selectors.items()
        }
        variables["runbook_url"] = self.runbook_url
        return variables


def load(path: Path = CONFIG_FILE) -> MonitoringConfig:
    with path.open(encoding="utf-8") as fh:
        return MonitoringConfig.model_validate(yaml.safe_load(fh))


@cache
def default() -> MonitoringConfig:
    """monitoring/config.yml, read once."""
    return load()


_ENVIRONMENT = jinja2.Environment(
    variable_start_string="[[",
    variable_end_string="]]",
    block_start_string="[%",
    block_end_string="%]",
    comment_start_string="[#",
    comment_end_string="#]",
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 - fills in YAML, not HTML
)


def fill(text: str, config: MonitoringConfig) -> str:
    """`text` with its placeholders filled in from `config`.

    Raises jinja2.TemplateError (UndefinedError for an unknown name)."""
    return _ENVIRONMENT.from_string(text).render(config.template_variables())


_JOB_MATCHER = re.compile(r"\bjob\s*(=~|!~|!=|=)\s*\"")
_RUNBOOK_LINE = re.compile(r"^\s*runbook_url:.*$", flags=re.MULTILINE)
_RUNBOOK_PLACEHOLDER = re.compile(
    r"""^\s*runbook_url: "\[\[ runbook_url\('[A-Za-z0-9]+'\) \]\]"$"""
)


def source_problems(text: str, config: MonitoringConfig) -> list[str]:
    """What a rule source writes by hand that it must take from config.yml."""
    problems = []
    for name, matchers in config.selectors.items():
        if matchers in text:
            problems.append(f"writes {matchers}: use [[ {name}_selector ]]")
    if _JOB_MATCHER.search(text):
        problems.append(
            "selects a job itself: use a [[ <name>_selector ]] (add it to config.yml's selectors)"
        )
    if "runbook_base_url" in text or config.runbook_base_url in text:
        problems.append("writes the runbook base: use [[ runbook_url('<Alert>') ]]")
    for line in _RUNBOOK_LINE.findall(text):
        if not _RUNBOOK_PLACEHOLDER.match(line):
            problems.append(f"{line.strip()}: write runbook_url: \"[[ runbook_url('<Alert>') ]]\"")
    return problems
