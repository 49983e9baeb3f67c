"""docs/runbook.md, stackcheck.runbook and the real checks' definitions agree, both ways."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import pytest
from definitions import definitions

from stackcheck import runbook
from stackcheck.definition import RUNBOOK, Check, Layer, Safety, Scope, Step
from stackcheck.runbook import ALERTS, ESCALATE_AFTER_MIN, POST_INCIDENT, STEPS

ROOT = Path(__file__).parent.parent.parent
DOC = (ROOT / RUNBOOK).read_text(encoding="utf-8")
CHECKS = definitions()
HEADING = re.compile(r"^#{2,3} (?:[DR]\d+\. )?(.+)$")
# The steps that stackcheck.runbook names and the checks can point at.
STEP_PREFIXES = ("diagnose-", "resolve-")


def sections() -> dict[str, str]:
    """Anchor -> the text from it to the next anchor."""
    parts = re.split(r'<a id="([^"]+)"></a>', DOC)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


ANCHORS = sections()


def heading(anchor: str) -> str:
    """The title of the heading right under ``anchor``, without its D1./R1. number."""
    first = ANCHORS[anchor].strip().splitlines()[0]
    found = HEADING.match(first)
    assert found, f"{anchor}: no heading under the anchor: {first!r}"
    return found.group(1)


def steps_of(check: Check) -> list[Step]:
    return list(check.steps)


def test_the_checks_are_found() -> None:
    # Every other test here iterates over these: an empty table would pass them all.
    assert "pg_data_disk" in CHECKS and "container_stable" in CHECKS
    assert all(isinstance(c, Check) for c in CHECKS.values())


def test_every_diagnosis_step_is_some_check_s_step() -> None:
    diagnosis = {a for a in ANCHORS if a.startswith("diagnose-")}
    assert diagnosis, "no diagnosis steps found in the runbook"
    assert diagnosis - {c.step.anchor for c in CHECKS.values()} == set()


def test_every_resolution_step_is_some_check_s_fix() -> None:
    resolution = {a for a in ANCHORS if a.startswith("resolve-")}
    assert resolution, "no resolution steps found in the runbook"
    fixes = {f.step.anchor for c in CHECKS.values() for f in c.fixes}
    assert resolution - fixes == set()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_step_of_each_check_is_in_the_runbook_under_its_title(name: str) -> None:
    check = CHECKS[name]
    assert check.step.anchor.startswith("diagnose-")
    assert all(f.step.anchor.startswith("resolve-") for f in check.fixes)
    for step in steps_of(check):
        assert step.doc == RUNBOOK
        assert step.anchor in ANCHORS, f"{name}: {step.anchor} is not in {RUNBOOK}"
        assert heading(step.anchor) == step.title


def test_runbook_module_names_exactly_the_document_s_steps() -> None:
    in_doc = {a for a in ANCHORS if a.startswith(STEP_PREFIXES)}
    assert {s.anchor for s in STEPS} == in_doc
    assert len(STEPS) == len(in_doc), "a step is listed twice in stackcheck.runbook.STEPS"
    for step in STEPS:
        assert heading(step.anchor) == step.title


def test_every_step_constant_is_in_steps() -> None:
    # A Step constant left out of STEPS would escape the test above.
    constants = {v for v in vars(runbook).values() if isinstance(v, Step)}
    assert constants - {runbook.POST_INCIDENT_STEP} == set(STEPS)


@pytest.mark.parametrize("anchor", sorted(a for a in ANCHORS if a.startswith("diagnose-")))
def test_diagnosis_steps_list_exactly_their_checks(anchor: str) -> None:
    listed = re.findall(r"^Checks: (.*)\.$", ANCHORS[anchor], re.MULTILINE)
    assert len(listed) == 1, f"{anchor} must have one 'Checks:' line"
    named = re.findall(r"`(\w+)`", listed[0])
    assert sorted(named) == sorted(n for n, c in CHECKS.items() if c.step.anchor == anchor)


def test_resolution_steps_list_no_checks() -> None:
    # "Checks:" belongs to the diagnosis steps; under a fix it would go unchecked.
    for anchor, text in ANCHORS.items():
        if anchor.startswith("resolve-"):
            assert not re.search(r"^Checks: ", text, re.MULTILINE), anchor


def test_diagnosis_steps_are_under_diagnosis_and_fixes_under_resolution() -> None:
    diagnosis = DOC.index("\n## Diagnosis\n")
    resolution = DOC.index("\n## Resolution\n")
    for anchor in ANCHORS:
        at = DOC.index(f'<a id="{anchor}"></a>')
        if anchor.startswith("diagnose-"):
            assert diagnosis < at < resolution, anchor
        elif anchor.startswith("resolve-"):
            assert at > resolution, anchor


def test_step_numbers_count_up_in_the_document() -> None:
    # D1..Dn and R1..Rn, each once and in order: the text refers to steps by number.
    for letter in "DR":
        numbers = [int(n) for n in re.findall(rf"^### {letter}(\d+)\. ", DOC, re.MULTILINE)]
        assert numbers == list(range(1, len(numbers) + 1)), letter


def test_the_data_disk_steps_say_what_the_on_call_needs() -> None:
    # Prose is wrapped: compare it with single spaces.
    disk = " ".join(ANCHORS["diagnose-data-disk"].split())
    assert "PostgreSQL stops when it fills" in disk
    assert "df -h" in disk
    free = " ".join(ANCHORS["resolve-data-disk"].split())
    for cause in ("replication slot", "archiv", "bloat", "logs"):
        assert cause in free, cause
    assert "Never delete files in `pg_wal` by hand" in free
    assert "grow the volume" in free


def test_the_memory_step_covers_oom_kills() -> None:
    # container_stable's OOM verdict sends the on-call engineer to R4, and R2 too.
    [oom_fix] = CHECKS["container_stable"].other_fixes
    assert oom_fix.step == runbook.RESOLVE_RESOURCES
    text = " ".join(ANCHORS[oom_fix.step.anchor].split())
    assert "An OOM kill is a container that ran out of memory" in text
    assert "OOMKilled" in text
    assert "(#resolve-resources)" in ANCHORS["resolve-crash-loop"]


def bash_lines(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("anchor", sorted(a for a in ANCHORS if a.startswith("resolve-")))
def test_resolution_commands_carry_their_safety_label(anchor: str) -> None:
    lines = bash_lines(ANCHORS[anchor])
    assert lines, f"{anchor} has no commands"
    labels = "|".join(s.value for s in Safety)
    for line in lines:
        if line.startswith("sleep "):  # a pause, not a command on the stack
            continue
        assert re.search(rf"# ({labels})$", line), f"{anchor}: unlabelled: {line}"


@pytest.mark.parametrize("anchor", sorted(a for a in ANCHORS if a.startswith("diagnose-")))
def test_diagnosis_commands_only_look(anchor: str) -> None:
    for line in bash_lines(ANCHORS[anchor]):
        assert expected_safety(line) is Safety.READ_ONLY, f"{anchor}: {line}"


def test_escalation_and_post_incident_match_the_runbook() -> None:
    assert f"**{ESCALATE_AFTER_MIN} minutes**" in ANCHORS["escalation"]
    for item in POST_INCIDENT:
        assert f"- [ ] {item}" in ANCHORS["post-incident"]


def related_alerts() -> dict[str, str]:
    """The "Related alerts" table: marker -> alert name."""
    table = DOC.split("\n## Related alerts\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|$", table, re.MULTILINE)
    return {marker: alert for alert, marker in rows}


def test_the_related_alerts_table_is_the_alert_markers() -> None:
    table = related_alerts()
    assert set(table) == set(ALERTS)
    for marker, alert in table.items():
        # ALERTS describes each marker as "AlertName: what it means".
        assert ALERTS[marker].startswith(f"{alert}: "), marker


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_each_check_s_alerts_are_known(name: str) -> None:
    alerts = CHECKS[name].alerts
    assert alerts, f"{name} answers no alert"
    assert set(alerts) <= set(ALERTS)
    assert len(set(alerts)) == len(alerts)


def test_every_alert_calls_for_some_check() -> None:
    assert set(ALERTS) == {a for c in CHECKS.values() for a in c.alerts}


# What hints.render() fills in a template: compose, docker, service, target and
# dependents always; health_url, pg_user, pg_dbname and target_port from the
# stack file; container, data_dir and data_root from the facts, on_host from the
# engine's address (stackcheck.payload). The
# hint tests render every template of every check and find each one filled.
PLACEHOLDERS = frozenset(
    {
        "compose",
        "docker",
        "service",
        "container",
        "target",
        "target_port",
        "pg_user",
        "pg_dbname",
        "health_url",
        "dependents",
        "data_dir",
        "data_root",
        "on_host",
    }
)
# Edge checks only: a service check has no target.
EDGE_ONLY = frozenset({"target", "target_port"})


def placeholders(template: str) -> set[str]:
    found = Template(template)
    assert found.is_valid(), template
    return set(found.get_identifiers())


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_commands_use_only_placeholders_the_hints_fill(name: str) -> None:
    check = CHECKS[name]
    for fix in check.fixes:
        assert fix.commands, f"{name}: {fix.step.anchor} suggests no command"
        for command in fix.commands:
            used = placeholders(command.template)
            assert used <= PLACEHOLDERS, command.template
            if check.scope is not Scope.EDGE:
                assert not used & EDGE_ONLY, command.template


VERBS = {
    Safety.DESTRUCTIVE: re.compile(r"(down|rm|volume rm|system prune|image prune|prune)\b"),
    Safety.MUTATING: re.compile(r"(up|restart|start|stop|kill|pause|unpause)\b"),
}


def expected_safety(command: str) -> Safety:
    """What a compose, docker or systemctl command line does, by its verb."""
    words = command.removeprefix("${on_host}").split("|")[0].split()
    if words[:1] == ["systemctl"]:  # on the Docker host
        changes = len(words) > 1 and words[1] in ("start", "stop", "restart", "reload")
        return Safety.MUTATING if changes else Safety.READ_ONLY
    for prefix in (
        ["$compose"],
        ["$docker"],
        ["docker", "compose"],
        ["docker-compose"],
        ["docker"],
    ):
        if words[: len(prefix)] == prefix:
            verb = " ".join(words[len(prefix) :])
            return next((s for s, v in VERBS.items() if v.match(verb)), Safety.READ_ONLY)
    return Safety.READ_ONLY


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_safety_class_matches_what_the_command_does(name: str) -> None:
    for fix in CHECKS[name].fixes:
        for command in fix.commands:
            assert command.safety == expected_safety(command.template), command.template


def test_edge_checks_and_only_they_say_which_target_layers_they_rely_on() -> None:
    for name, check in CHECKS.items():
        assert bool(check.target_layers) == (check.scope is Scope.EDGE), name
        assert (check.scope is Scope.EDGE) == (check.layer == Layer.NETWORK), name
