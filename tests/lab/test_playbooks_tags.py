"""Every role's tasks/main.yml is a table of contents of tagged phases, and the tags reach
every task, so `--tags <role>_<phase>` runs exactly that phase (runbooks rely on it).

No lab needed: reads the roles' YAML and runs `ansible-playbook --list-tags` against an
empty inventory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import topology

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = PLAYBOOKS / "roles"
BIN = Path(sys.executable).parent

PHASES = ("preflight", "install", "configure", "service")
# Task files other roles and plays run with tasks_from, each tagged <role>_<entry point>.
ENTRY_POINTS = {"pki": ("issue", "sign", "trust"), "shop": ("migrate",)}
# pki has no phases of its own: its main.yml is its `issue` entry point.
MAIN_PHASES = {"pki": ("issue",)}
IMPORT_TASKS = {"ansible.builtin.import_tasks", "import_tasks"}
INCLUDES = {
    "ansible.builtin.include_role",
    "include_role",
    "ansible.builtin.include_tasks",
    "include_tasks",
}
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks" / "main.yml").exists())


def _load(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or []


def _tags(item: dict[str, Any]) -> set[str]:
    tags = item.get("tags", [])
    return {tags} if isinstance(tags, str) else set(tags)


def _tasks(items: list[dict[str, Any]], inherited: frozenset[str] = frozenset()):
    """(task, tags it carries statically: its own and its enclosing blocks'), blocks opened."""
    for item in items:
        tags = inherited | _tags(item)
        if "block" in item:
            for key in ("block", "rescue", "always"):
                yield from _tasks(item.get(key, []), tags)
        else:
            yield item, tags


def _phases(role: str) -> list[str]:
    return [
        Path(item[k]).stem
        for item in _load(ROLES / role / "tasks" / "main.yml")
        for k in item
        if k in IMPORT_TASKS
    ]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_main_yml_only_imports_phase_files_tagged_role_and_phase(role):
    tasks_dir = ROLES / role / "tasks"
    allowed = MAIN_PHASES.get(role, PHASES)
    seen = []
    for item in _load(tasks_dir / "main.yml"):
        (action,) = set(item) - {"name", "tags"}
        assert action in IMPORT_TASKS, (
            f"{role}/tasks/main.yml: {item.get('name')!r} is not an import"
        )
        phase = Path(item[action]).stem
        assert item[action] == f"{phase}.yml" and (tasks_dir / item[action]).is_file(), item
        assert phase in allowed, f"{role}: {phase} is not one of {allowed}"
        assert item.get("tags") == [role, f"{role}_{phase}"], item
        seen.append(phase)
    assert seen, f"{role}/tasks/main.yml imports nothing"
    assert seen == sorted(set(seen), key=allowed.index), f"{role}: phases out of order: {seen}"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_task_file_is_a_phase_or_an_entry_point(role):
    files = {p.stem for p in (ROLES / role / "tasks").glob("*.yml")} - {"main"}
    assert files == set(_phases(role)) | set(ENTRY_POINTS.get(role, ())), role


@pytest.mark.parametrize(
    ("role", "entry"), [(r, e) for r, entries in ENTRY_POINTS.items() for e in entries]
)
def test_entry_point_tasks_carry_role_and_entry_point_tags(role, entry):
    # a play or role runs them through include_role, whose own tags stop at the include
    for task, tags in _tasks(_load(ROLES / role / "tasks" / f"{entry}.yml")):
        assert {role, f"{role}_{entry}"} <= tags, (role, entry, task.get("name"))


def _includes():
    """(where, include task, the tags its context gives it) for every include in the playbooks."""
    for role in ROLE_NAMES:
        for path in sorted((ROLES / role / "tasks").glob("*.yml")):
            context = (
                frozenset({role, f"{role}_{path.stem}"}) if path.stem != "main" else frozenset()
            )
            for task, tags in _tasks(_load(path), context):
                if set(task) & INCLUDES:
                    yield f"{role}/tasks/{path.name}", task, tags
    for play in _load(PLAYBOOKS / "site.yml"):
        for task, tags in _tasks(play.get("tasks", [])):
            if set(task) & INCLUDES:
                yield "site.yml", task, tags


INCLUDE_CASES = list(_includes())


@pytest.mark.parametrize(
    ("where", "task", "tags"),
    INCLUDE_CASES,
    ids=[f"{where}:{task.get('name')}" for where, task, _ in INCLUDE_CASES],
)
def test_includes_pass_their_tags_to_the_included_tasks(where, task, tags):
    (action,) = set(task) & INCLUDES
    args = task[action] if isinstance(task[action], dict) else {"file": task[action]}
    if "role" in action:
        # include_role of an entry point: tagged with it, so --tags pki_trust reaches it
        name, entry = args["name"], args.get("tasks_from", "main")
        expected = {name, f"{name}_{entry}"} if entry != "main" else {name}
        assert expected <= tags, (where, task.get("name"))
        if name == "pki" and entry == "issue":  # issue.yml also trusts the CA
            assert "pki_trust" in tags, (where, task.get("name"))
    # tags on a dynamic include apply to the include only: `apply` hands the caller's
    # role and phase tags down, so `--tags <role>_<phase>` runs the included tasks too
    applied = set((args.get("apply") or {}).get("tags", []))
    caller = {t for t in tags if not t.startswith(f"{args.get('name')}_")} - {args.get("name")}
    assert caller <= applied, (where, task.get("name"), sorted(caller - applied))


def test_the_release_fact_is_set_whatever_the_tags():
    # shop and partners read shop_release_current; their argument specs are validated
    # (tag `always`) on every run, so any --tags run would fail without it
    setters = [
        (task, tags)
        for path in (ROLES / "shop_release" / "tasks").glob("*.yml")
        for task, tags in _tasks(_load(path))
        if "shop_release_current" in (task.get("ansible.builtin.set_fact") or {})
    ]
    assert setters, "shop_release no longer sets shop_release_current"
    assert all("always" in tags for _, tags in setters), setters


@pytest.fixture(scope="module")
def listed_tags(tmp_path_factory) -> set[str]:
    """Every tag `ansible-playbook --list-tags site.yml` shows (an empty inventory)."""
    inventory = tmp_path_factory.mktemp("list-tags") / "hosts.yml"
    inventory.write_text("all: {}\n")
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "--list-tags", "-i", str(inventory), "site.yml"],
        cwd=PLAYBOOKS,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        tag.strip()
        for line in re.findall(r"TASK TAGS: \[(.*)\]", result.stdout)
        for tag in line.split(",")
    }


def test_list_tags_shows_a_tag_per_role_and_phase(listed_tags):
    expected = {
        tag for role in ROLE_NAMES for tag in (role, *(f"{role}_{p}" for p in _phases(role)))
    }
    expected |= {f"{role}_{entry}" for role, entries in ENTRY_POINTS.items() for entry in entries}
    assert expected <= listed_tags, sorted(expected - listed_tags)


# --- the playbook commands the runbooks give -------------------------------------------

REPO = PLAYBOOKS.parent
RUNBOOKS = REPO / "runbooks"


def _runbook_playbook_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for page in sorted(RUNBOOKS.glob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            if "ansible-playbook " in line:
                words = shlex.split(line.split("ansible-playbook ", 1)[1].split("&&")[0])
                commands.append((page.name, words))
    return commands


def _variables_the_roles_know() -> set[str]:
    known: set[str] = set()
    for role in ROLE_NAMES:
        defaults = ROLES / role / "defaults" / "main.yml"
        if defaults.exists():
            known |= set(yaml.safe_load(defaults.read_text()) or {})
        specs = ROLES / role / "meta" / "argument_specs.yml"
        if specs.exists():
            for entry in (yaml.safe_load(specs.read_text())["argument_specs"]).values():
                known |= set(entry.get("options", {}))
    return known


def _hosts_and_groups() -> set[str]:
    topo = topology.load()
    zones = {f"zone_{h.zone}" for h in topo.lab.hosts.values() if h.zone}
    return set(topo.lab.hosts) | {f"tier_{tier}" for tier in topo.tiers} | zones | {"all"}


PLAYBOOK_COMMANDS = _runbook_playbook_commands()


def test_the_runbooks_give_playbook_commands() -> None:
    assert len(PLAYBOOK_COMMANDS) >= 3, PLAYBOOK_COMMANDS


@pytest.mark.parametrize(
    ("page", "words"), PLAYBOOK_COMMANDS, ids=[f"{p}:{' '.join(w)}" for p, w in PLAYBOOK_COMMANDS]
)
def test_runbook_playbook_commands_use_tags_and_variables_that_exist(
    page: str, words: list[str], listed_tags: set[str]
) -> None:
    options: dict[str, list[str]] = {}
    positional = []
    pending = None
    for word in words:
        if pending:
            options.setdefault(pending, []).append(word)
            pending = None
        elif word in {"-i", "--inventory", "--tags", "-t", "--limit", "-l", "-e", "--extra-vars"}:
            pending = word
        else:
            positional.append(word)
    problems = [f"no playbook {p}" for p in positional if not (REPO / p).is_file()]
    # The environment's shell names the inventory (ANSIBLE_INVENTORY: the lab's operator
    # shell, or on-call.md's AWS set-up); an -i on the page would pin one environment.
    for inventory in options.get("-i", []) + options.get("--inventory", []):
        problems.append(f"-i {inventory}: the operator's ANSIBLE_INVENTORY picks the inventory")
    for tag in ",".join(options.get("--tags", []) + options.get("-t", [])).split(","):
        if tag and tag not in listed_tags:
            problems.append(f"no task is tagged {tag}")
    for limit in ",".join(options.get("--limit", []) + options.get("-l", [])).split(","):
        for name in re.split(r"[:&!]+", limit):
            if name and name not in _hosts_and_groups():
                problems.append(f"no host or group {name}")
    known = _variables_the_roles_know()
    for assignment in options.get("-e", []) + options.get("--extra-vars", []):
        name = assignment.split("=", 1)[0]
        if name not in known:
            problems.append(f"no role reads the variable {name}")
    assert problems == [], f"{page}: {' '.join(words)}: {problems}"
