"""Write every rule file Prometheus loads, monitoring/rules/*.rules.yml, from its source.

Hand-written rules live in rules/src/<file>.rules.yml.j2, with the placeholders of
config.yml (`[[ shop_selector ]]`, `[[ runbook_url('InstanceDown') ]]`; see
monitoring.config); slo.rules.yml comes from slos.yml (monitoring.slo_rules). The
generated files are committed: Prometheus, promtool and the lab's monitoring role read them.

    python -m monitoring.render_rules            # rewrite monitoring/rules/*.rules.yml
    python -m monitoring.render_rules --check    # exit 1 when a committed file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jinja2
import yaml
from pydantic import ValidationError

from monitoring import REPO_DIR, RULES_DIR, slo_rules
from monitoring import config as monitoring_config
from monitoring.config import MonitoringConfig

SOURCES_DIR = RULES_DIR / "src"
SOURCE_SUFFIX = ".j2"
RULE_FILE_PATTERN = "*.rules.yml"


class SourceError(ValueError):
    """A rule source the generator refuses; the message names the file and the problem."""


def sources(sources_dir: Path = SOURCES_DIR) -> list[Path]:
    return sorted(sources_dir.glob(RULE_FILE_PATTERN + SOURCE_SUFFIX))


def output_name(source: Path) -> str:
    return source.name.removesuffix(SOURCE_SUFFIX)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_DIR)) if path.is_relative_to(REPO_DIR) else str(path)


def header(source: Path) -> str:
    return (
        f"# GENERATED from {_shown(source)} and monitoring/config.yml by\n"
        "# monitoring/render_rules.py. Do not edit: change those and run `make rules`\n"
        "# (a test fails while this file is stale).\n"
    )


def _check_runbook_links(text: str, config: MonitoringConfig) -> list[str]:
    """Every alert links its own runbook (runbook_url('X') under alert X)."""
    problems = []
    for group in (yaml.safe_load(text) or {}).get("groups", []):
        for rule in group.get("rules", []):
            if "alert" not in rule:
                continue
            url = rule.get("annotations", {}).get("runbook_url")
            if url != config.runbook_url(rule["alert"]):
                problems.append(f"alert {rule['alert']} links {url!r}, not its own runbook")
    return problems


def render_source(source: Path, config: MonitoringConfig) -> str:
    """The rule file generated from `source`. Raises SourceError."""
    text = source.read_text(encoding="utf-8")
    problems = monitoring_config.source_problems(text, config)
    try:
        rendered = monitoring_config.fill(text, config)
        problems += _check_runbook_links(rendered, config)
    except jinja2.TemplateError as error:
        line = getattr(error, "lineno", None)
        problems.append(f"line {line}: {error}" if line else str(error))
    except yaml.YAMLError as error:
        problems.append(f"not YAML once filled in: {error}")
    if problems:
        raise SourceError(f"{_shown(source)}: " + "; ".join(problems))
    return header(source) + rendered


def rendered(
    config: MonitoringConfig,
    sources_dir: Path = SOURCES_DIR,
    slos: Path = slo_rules.SLOS_FILE,
) -> dict[str, str]:
    """Rule file name -> its text, for every rule file. Raises SourceError."""
    files = {output_name(source): render_source(source, config) for source in sources(sources_dir)}
    try:
        files[slo_rules.OUTPUT_FILE.name] = slo_rules.render(slo_rules.load_slos(slos), config)
    except (OSError, yaml.YAMLError, ValueError, jinja2.TemplateError) as error:
        raise SourceError(f"{_shown(slos)}: {error}") from None
    return files


def stale(files: dict[str, str], output_dir: Path, sources_dir: Path = SOURCES_DIR) -> list[str]:
    """Why the rule files in `output_dir` are not what the generator writes now."""
    reasons = []
    for name, text in files.items():
        path = output_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current is None:
            reasons.append(f"{_shown(path)} is missing")
        elif current != text:
            reasons.append(f"{_shown(path)} differs from its source")
    for path in sorted(output_dir.glob(RULE_FILE_PATTERN)):
        if path.name not in files:
            reasons.append(f"{_shown(path)} has no source in {_shown(sources_dir)}")
    return reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=monitoring_config.CONFIG_FILE, help="the values to fill in"
    )
    parser.add_argument(
        "--sources", type=Path, default=SOURCES_DIR, help="the hand-written rule sources"
    )
    parser.add_argument("--slos", type=Path, default=slo_rules.SLOS_FILE, help="the SLO file")
    parser.add_argument(
        "--output-dir", type=Path, default=RULES_DIR, help="where the rule files go"
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a rule file is stale"
    )
    args = parser.parse_args(argv)
    try:
        config = monitoring_config.load(args.config)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        print(f"error: cannot read {args.config}: {error}", file=sys.stderr)
        return 2
    try:
        files = rendered(config, args.sources, args.slos)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        reasons = stale(files, args.output_dir, args.sources)
        for reason in reasons:
            print(f"{reason}: run `make rules`", file=sys.stderr)
        return 1 if reasons else 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = args.output_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {_shown(path)}")
    orphans = [
        path for path in sorted(args.output_dir.glob(RULE_FILE_PATTERN)) if path.name not in files
    ]
    for path in orphans:
        print(f"error: {_shown(path)} has no source in {_shown(args.sources)}", file=sys.stderr)
    return 1 if orphans else 0


if __name__ == "__main__":
    sys.exit(main())
