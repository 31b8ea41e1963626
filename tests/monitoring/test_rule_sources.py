"""Rule sources and monitoring/config.yml: the committed rule files are exactly what the
generator writes, no source writes a selector or the runbook base by hand, and a value
changed in config.yml reaches every rule."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from monitoring_services import run
from monitoring_support import RULES_DIR, load_yaml, rule_files

from monitoring import config as monitoring_config
from monitoring import render_rules, slo_rules

CONFIG = monitoring_config.default()
HAND_WRITTEN_SOURCE = """\
groups:
  - name: x
    rules:
      - alert: XDown
        expr: {expr}
        for: 1m
        labels:
          severity: ticket
          team: sre
        annotations:
          summary: x
          description: "{{{{ $value }}}}"
          runbook_url: {runbook_url}
"""
GOOD_EXPR = "up{[[ shop_selector ]]} == 0"
GOOD_RUNBOOK_URL = "\"[[ runbook_url('XDown') ]]\""


def _source_dir(tmp_path: Path, expr: str = GOOD_EXPR, runbook_url: str = GOOD_RUNBOOK_URL) -> Path:
    sources = tmp_path / "src"
    sources.mkdir()
    text = HAND_WRITTEN_SOURCE.format(expr=expr, runbook_url=runbook_url)
    (sources / "x.rules.yml.j2").write_text(text, encoding="utf-8")
    return sources


def _generate(tmp_path: Path, *extra: str) -> int:
    return render_rules.main(["--output-dir", str(tmp_path / "out"), *extra])


def test_committed_rule_files_are_what_the_generator_writes() -> None:
    assert render_rules.main(["--check"]) == 0, "run `make rules`"


def test_every_rule_file_is_generated_and_says_so() -> None:
    generated = {path.name for path in rule_files()}
    sources = {render_rules.output_name(path) for path in render_rules.sources()}
    assert generated == sources | {slo_rules.OUTPUT_FILE.name}
    for path in rule_files():
        assert path.read_text(encoding="utf-8").startswith("# GENERATED from monitoring/")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("edit", "availability.rules.yml differs from its source"),
        ("delete", "availability.rules.yml is missing"),
        ("add", "extra.rules.yml has no source"),
    ],
)
def test_check_fails_when_a_rule_file_is_not_what_the_generator_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, reason: str
) -> None:
    output = tmp_path / "rules"
    output.mkdir()
    for path in rule_files():
        shutil.copy(path, output)
    assert render_rules.main(["--check", "--output-dir", str(output)]) == 0
    edited = output / "availability.rules.yml"
    if change == "edit":
        edited.write_text(edited.read_text(encoding="utf-8").replace("for: 3m", "for: 4m"))
    elif change == "delete":
        edited.unlink()
    else:
        shutil.copy(edited, output / "extra.rules.yml")
    assert render_rules.main(["--check", "--output-dir", str(output)]) == 1
    assert reason in capsys.readouterr().err


def test_generating_twice_writes_the_same_files(tmp_path: Path) -> None:
    assert _generate(tmp_path) == 0
    first = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert _generate(tmp_path) == 0
    second = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert first == second
    assert first == {p.name: p.read_text(encoding="utf-8") for p in rule_files()}


@pytest.mark.parametrize(
    "source", render_rules.sources(), ids=lambda p: render_rules.output_name(p)
)
def test_no_rule_source_writes_a_selector_or_the_runbook_base(source: Path) -> None:
    text = source.read_text(encoding="utf-8")
    assert monitoring_config.source_problems(text, CONFIG) == []
    assert 'job="shop"' not in text
    assert "runbook_base_url" not in text
    assert CONFIG.runbook_base_url not in text


def test_the_slo_selectors_take_the_shop_job_from_the_config() -> None:
    for name, slo in load_yaml(slo_rules.SLOS_FILE)["slos"].items():
        assert monitoring_config.source_problems(slo["selector"], CONFIG) == [], name
        assert slo["selector"].startswith("[[ shop_selector ]]"), name


def test_every_selector_of_the_config_is_used() -> None:
    texts = [path.read_text(encoding="utf-8") for path in render_rules.sources()]
    texts.append(slo_rules.SLOS_FILE.read_text(encoding="utf-8"))
    for name in CONFIG.selectors:
        assert any(f"[[ {name}_selector ]]" in text for text in texts), name


@pytest.mark.parametrize(
    ("expr", "runbook_url", "message"),
    [
        ('up{job="shop"} == 0', GOOD_RUNBOOK_URL, "use [[ shop_selector ]]"),
        ('up{job="postgres"} == 0', GOOD_RUNBOOK_URL, "selects a job itself"),
        ('up{job=~"shop|x"} == 0', GOOD_RUNBOOK_URL, "selects a job itself"),
        (
            GOOD_EXPR,
            '"{{ $externalLabels.runbook_base_url }}/XDown.md"',
            "writes the runbook base",
        ),
        (GOOD_EXPR, f'"{CONFIG.runbook_base_url}/XDown.md"', "writes the runbook base"),
        (GOOD_EXPR, "\"[[ runbook_url('YDown') ]]\"", "alert XDown links"),
        ("up{[[ shop_selectr ]]} == 0", GOOD_RUNBOOK_URL, "shop_selectr"),
        ('"up{[[ shop_selector ]]} == 0', GOOD_RUNBOOK_URL, "not YAML once filled in"),
    ],
)
def test_generator_refuses_a_source_that_does_not_use_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expr: str, runbook_url: str, message: str
) -> None:
    sources = _source_dir(tmp_path, expr, runbook_url)
    assert _generate(tmp_path, "--sources", str(sources)) == 2
    error = capsys.readouterr().err
    assert "x.rules.yml.j2" in error
    assert message in error
    assert not (tmp_path / "out").exists()


def test_generator_refuses_an_slo_selector_that_writes_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slos = load_yaml(slo_rules.SLOS_FILE)
    slos["slos"]["storefront-availability"]["selector"] = 'job="shop"'
    changed = tmp_path / "slos.yml"
    changed.write_text(yaml.safe_dump(slos), encoding="utf-8")
    assert _generate(tmp_path, "--slos", str(changed)) == 2
    error = capsys.readouterr().err
    assert "storefront-availability" in error
    assert "use [[ shop_selector ]]" in error


def test_config_refuses_a_runbook_pattern_without_the_alert_name(tmp_path: Path) -> None:
    raw = load_yaml(monitoring_config.CONFIG_FILE)
    raw["runbook_url_pattern"] = "{{ $externalLabels.runbook_base_url }}/index.md"
    bad = tmp_path / "config.yml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert _generate(tmp_path, "--config", str(bad)) == 2


def test_a_value_changed_in_the_config_reaches_every_rule(tmp_path: Path) -> None:
    raw = load_yaml(monitoring_config.CONFIG_FILE)
    raw["selectors"]["shop"] = 'job="shop-eu"'
    raw["runbook_url_pattern"] = "https://wiki.example.net/runbooks/%s"
    changed = tmp_path / "config.yml"
    changed.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert _generate(tmp_path, "--config", str(changed)) == 0

    committed = "".join(path.read_text(encoding="utf-8") for path in rule_files())
    outputs = sorted((tmp_path / "out").glob("*.rules.yml"))
    generated = "".join(path.read_text(encoding="utf-8") for path in outputs)
    assert 'job="shop"' not in generated
    assert generated.count('job="shop-eu"') == committed.count('job="shop"') > 20
    assert "runbook_base_url" not in generated
    urls = re.findall(r"runbook_url: \"?([^\"\n]+)", generated)
    alerts = re.findall(r"- alert: (\w+)", generated)
    assert urls == [f"https://wiki.example.net/runbooks/{name}" for name in alerts]
    assert len(alerts) == len(re.findall(r"- alert: ", committed))
    result = run(["promtool", "check", "rules", *map(str, outputs)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_link_runbooks_through_the_external_label_of_prometheus_yml() -> None:
    """The rules are the same everywhere; each Prometheus sets its runbook base."""
    assert "$externalLabels.runbook_base_url" in CONFIG.runbook_url_pattern
    template = (RULES_DIR.parent / "prometheus" / "prometheus.yml.j2").read_text(encoding="utf-8")
    assert 'runbook_base_url: "{{ runbook_base_url }}"' in template
