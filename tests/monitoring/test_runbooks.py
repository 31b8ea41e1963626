"""runbooks/: a page per alert, each naming its alert, in the five-part shape, with every
command block syntactically valid (bash -n, Prometheus's parser, PostgreSQL's parser)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pglast
import pytest
import yaml
from monitoring_services import run
from monitoring_support import (
    BLOCK_KINDS,
    REQUIRED_SECTIONS,
    RUNBOOKS_DIR,
    alert_names,
    alerting_rules,
    code_blocks,
    marked_blocks,
    promql_statements,
    runbook_pages,
)

import topology

ALL_PAGES = sorted(RUNBOOKS_DIR.glob("*.md"))
CHECKED_LANGUAGES = {"bash", "promql", "sql"}


def test_every_alert_has_a_page_and_every_page_an_alert() -> None:
    pages = {page.stem for page in runbook_pages()}
    assert alert_names() - pages == set(), "alerts without a runbook"
    assert pages - alert_names() == set(), "runbooks of alerts that do not exist"


@pytest.mark.parametrize("page", runbook_pages(), ids=lambda p: p.name)
def test_page_names_its_alert_and_has_the_five_parts(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"# {page.stem}"
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert [h for h in headings if h in REQUIRED_SECTIONS] == list(REQUIRED_SECTIONS)
    assert any(lang == "promql" for lang, _ in code_blocks(page)), "PromQL to confirm"
    severity = re.search(r"^Severity: (page|ticket|none)", text, flags=re.MULTILINE)
    assert severity, "the page says the alert's severity"


@pytest.mark.parametrize("page", runbook_pages(), ids=lambda p: p.name)
def test_page_states_the_alerts_real_severity_and_team(page: Path) -> None:
    rule = next(r for r in alerting_rules() if r["alert"] == page.stem)
    first_lines = "\n".join(page.read_text(encoding="utf-8").splitlines()[:3])
    assert f"Severity: {rule['labels']['severity']}" in first_lines
    assert f"Team: {rule['labels']['team']}" in first_lines


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.name)
def test_bold_alert_names_refer_to_existing_alerts(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\*\*([A-Z][a-z]+(?:[A-Z][A-Za-z0-9]*)+)\*\*", text))
    assert mentioned <= alert_names(), sorted(mentioned - alert_names())


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.name)
def test_every_code_block_is_checked(page: Path) -> None:
    languages = {lang for lang, _ in code_blocks(page)}
    assert languages <= CHECKED_LANGUAGES, "label blocks bash, promql or sql"


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.name)
def test_bash_blocks_pass_bash_n(page: Path) -> None:
    for _, body in (b for b in code_blocks(page) if b[0] == "bash"):
        result = run(["bash", "-n"], input=body)
        assert result.returncode == 0, f"{result.stderr}\n{body}"


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: p.name)
def test_sql_blocks_parse_with_postgresql_s_parser(page: Path) -> None:
    for _, body in (b for b in code_blocks(page) if b[0] == "sql"):
        try:
            statements = pglast.parse_sql(body)
        except pglast.parser.ParseError as error:
            pytest.fail(f"{page.name}: {error}\n{body}")
        assert statements


def test_promql_blocks_parse_in_prometheus(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule, with Prometheus's own parser."""
    rules = []
    for page in ALL_PAGES:
        for _, body in (b for b in code_blocks(page) if b[0] == "promql"):
            for statement in promql_statements(body):
                rules.append({"record": f"runbook:query_{len(rules)}", "expr": statement})
    assert len(rules) > 100
    rule_file = tmp_path / "runbook-queries.yml"
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}), encoding="utf-8"
    )
    result = run(["promtool", "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promql_check_would_catch_a_typo(tmp_path: Path) -> None:
    rule_file = tmp_path / "bad.yml"
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x", "expr": "sum(up"}]}]}),
        encoding="utf-8",
    )
    assert run(["promtool", "check", "rules", str(rule_file)]).returncode != 0


def test_index_links_every_page() -> None:
    index = (RUNBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    assert linked == {p.name for p in runbook_pages()} | {"on-call.md"}
    for link in linked:
        assert (RUNBOOKS_DIR / link).is_file()


def test_on_call_page_covers_silencing_escalation_and_postmortems() -> None:
    text = (RUNBOOKS_DIR / "on-call.md").read_text(encoding="utf-8")
    for heading in ("## Silencing", "## Escalating", "## Postmortem"):
        assert heading in text
    assert "amtool" in text


# --- the units the pages name are the ones the roles run ---------------------------------

ROLES_DIR = RUNBOOKS_DIR.parent / "playbooks" / "roles"
SERVICE_MODULES = {
    "ansible.builtin.service",
    "ansible.builtin.systemd",
    "ansible.builtin.systemd_service",
}
# `systemctl <verb> <unit>`, `journalctl -u <unit>`, and the pages' "job -> `unit`" lists
UNIT_MENTIONS = (
    r"systemctl (?:status|restart|start|stop|reload|is-active|enable|disable)"
    r"(?: --[\w-]+)* ([\w@.-]+)",
    r"journalctl (?:[^|'\n]* )?-u ([\w@.-]+)",
    r"-> `([\w@.-]+)`",
)


def _tasks(role: Path) -> list[dict]:
    found: list[dict] = []
    for folder in ("tasks", "handlers"):
        for path in sorted((role / folder).glob("*.yml")):
            found.extend(t for t in yaml.safe_load(path.read_text()) or [] if isinstance(t, dict))
    return found


def _with_defaults(name: str, defaults: dict) -> str:
    """A role's templated unit name with its defaults: postgresql@{{ version }}-... ."""
    return re.sub(r"\{\{ (\w+) \}\}", lambda m: str(defaults[m.group(1)]), name)


def _units_the_roles_run() -> set[str]:
    units: set[str] = set()
    for role in sorted(p for p in ROLES_DIR.iterdir() if p.is_dir()):
        defaults_file = role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        for task in _tasks(role):
            module = next((task[m] for m in SERVICE_MODULES if m in task), None)
            if not isinstance(module, dict) or "name" not in module:
                continue
            names = task.get("loop", []) if module["name"] == "{{ item }}" else [module["name"]]
            units.update(_with_defaults(str(name), defaults) for name in names)
    return {unit.removesuffix(".service") for unit in units}


def _units_the_pages_name() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for page in ALL_PAGES:
        text = page.read_text(encoding="utf-8")
        for pattern in UNIT_MENTIONS:
            for unit in re.findall(pattern, text):
                named.setdefault(unit.removesuffix(".service"), set()).add(page.name)
    # the index's table of hosts: "| host | `unit` (details), `unit` |"
    index = (RUNBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    for row in re.findall(r"^\| [\w, -]+ \| (.+) \|$", index, re.M):
        for unit in re.findall(r"`([\w@.-]+)`", re.sub(r"\([^()]*\)", "", row)):
            named.setdefault(unit, set()).add("README.md")
    return named


def test_every_unit_a_page_names_is_one_a_role_runs() -> None:
    run_by_roles = _units_the_roles_run()
    assert {"shop", "haproxy", "postgresql@15-main"} <= run_by_roles, run_by_roles
    unknown = {u: sorted(p) for u, p in _units_the_pages_name().items() if u not in run_by_roles}
    assert unknown == {}, f"units no role runs: {unknown}"


def _schemes_by_port() -> dict[int, str]:
    """The scheme each named port speaks, as the topology says (scrape jobs, published)."""
    topo = topology.load()
    schemes = {topo.port(job.port): job.scheme for job in topo.scrape_jobs}
    schemes.update({topo.port(p.port): p.scheme for p in topo.lab.published.values()})
    return schemes


def test_urls_in_the_pages_use_the_scheme_their_port_speaks() -> None:
    schemes = _schemes_by_port()
    assert schemes[topology.load().port("app")] == "https"
    wrong = [
        f"{page.name}: {url}"
        for page in ALL_PAGES
        for url, scheme, port in re.findall(
            r"((https?)://[\w.$-]+:(\d+))", page.read_text(encoding="utf-8")
        )
        if schemes.get(int(port), scheme) != scheme
    ]
    assert wrong == []


def _ssh_remote_words(line: str) -> list[list[str]]:
    """The remote command words of each `ssh <host> ...` in a shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in REDIRECTIONS:  # a local redirection (`2>/dev/null`): not sent
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()
            skip_next = True
        elif token in {"|", "||", "&&", ";", "&", "(", ")"}:
            commands.append([])
        else:
            commands[-1].append(token)
    found = []
    for words in commands:
        while words and words[0] in {"do", "then", "sudo"}:
            words = words[1:]
        if len(words) > 2 and words[0] == "ssh":
            found.append(words[2:])
    return found


# What the remote shell would split or interpret in a word that was quoted locally (`$`
# is left out: in double quotes, as the pages use it, it is expanded before ssh runs).
REMOTE_SHELL_SPECIAL = re.compile(r"""[\s\\|;&<>()'"*]""")
REDIRECTIONS = {">", ">>", "<", ">&", "<&", "&>"}


def test_remote_commands_survive_ssh_joining_their_words() -> None:
    """ssh joins its arguments with spaces and the remote shell parses them again: a word
    quoted here arrives unquoted there (`--since "-30 min"` as two words, `'%{http_code}\\n'`
    as `%{http_code}n`). Quote the whole remote command instead, or write plain words."""
    broken = [
        f"{page.name}: {line.strip()}"
        for page in ALL_PAGES
        for lang, body in code_blocks(page)
        if lang == "bash"
        for line in body.replace("\\\n", " ").splitlines()
        for words in _ssh_remote_words(line)
        if len(words) > 1 and any(REMOTE_SHELL_SPECIAL.search(word) for word in words)
    ]
    assert broken == []


@pytest.mark.parametrize("page", runbook_pages(), ids=lambda p: p.name)
def test_every_command_block_says_whether_it_diagnoses_or_mitigates(page: Path) -> None:
    """The info string after the language (```bash mitigation) is what the drills read:
    they run a page's mitigation blocks from the page itself."""
    blocks = marked_blocks(page)
    unmarked = [(lang, section) for lang, kind, _, section in blocks if kind not in BLOCK_KINDS]
    assert unmarked == [], "mark each block `diagnosis` or `mitigation`"
    # looking never changes anything: no mitigation among the Diagnosis commands
    assert [b for b in blocks if b[3] == "Diagnosis" and b[1] == "mitigation"] == []
    assert [b for b in blocks if b[3] == "Mitigation" and b[1] == "diagnosis"] == [], (
        "a check after a fix belongs to its mitigation block"
    )
