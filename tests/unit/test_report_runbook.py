"""docs/runbook.md and the catalogue agree, both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackcheck.model import CHECKS
from stackcheck.report.catalogue import (
    ALERTS,
    CATALOGUE,
    ESCALATE_AFTER_MIN,
    POST_INCIDENT,
    RUNBOOK,
    STEPS,
    Layer,
    Safety,
)

DOC = (Path(__file__).parent.parent.parent / RUNBOOK).read_text(encoding="utf-8")


def sections() -> dict[str, str]:
    """Anchor -> the text from it to the next anchor."""
    parts = re.split(r'<a id="([^"]+)"></a>', DOC)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


ANCHORS = sections()


def test_every_diagnosis_step_has_a_check() -> None:
    diagnosis = {a for a in ANCHORS if a.startswith("diagnose-")}
    implemented = {e.step for e in CATALOGUE.values()}
    assert diagnosis, "no diagnosis steps found in the runbook"
    assert diagnosis - implemented == set(), "diagnosis steps with no check"


def test_every_resolution_step_is_some_check_s_fix() -> None:
    resolution = {a for a in ANCHORS if a.startswith("resolve-")}
    assert resolution - {e.fix for e in CATALOGUE.values()} == set()


@pytest.mark.parametrize("check", CHECKS)
def test_each_check_names_steps_the_runbook_has(check: str) -> None:
    entry = CATALOGUE[check]
    assert entry.step.startswith("diagnose-") and entry.step in ANCHORS
    assert entry.fix.startswith("resolve-") and entry.fix in ANCHORS


@pytest.mark.parametrize("anchor", sorted(STEPS))
def test_step_titles_are_the_runbook_s_headings(anchor: str) -> None:
    heading = ANCHORS[anchor].strip().splitlines()[0]
    assert heading.startswith("###") and heading.endswith(STEPS[anchor])


@pytest.mark.parametrize("anchor", sorted(a for a in STEPS if a.startswith("diagnose-")))
def test_diagnosis_steps_list_exactly_their_checks(anchor: str) -> None:
    listed = re.search(r"^Checks: (.*)\.$", ANCHORS[anchor], re.MULTILINE)
    assert listed, f"{anchor} lists no checks"
    assert sorted(re.findall(r"`(\w+)`", listed.group(1))) == sorted(
        e.check for e in CATALOGUE.values() if e.step == anchor
    )


def test_catalogue_covers_the_checks_in_order() -> None:
    assert tuple(CATALOGUE) == CHECKS


def test_escalation_and_post_incident_match_the_runbook() -> None:
    assert f"**{ESCALATE_AFTER_MIN} minutes**" in ANCHORS["escalation"]
    for item in POST_INCIDENT:
        assert f"- [ ] {item}" in ANCHORS["post-incident"]


def test_each_alert_marker_is_in_the_runbook() -> None:
    for marker in ALERTS:
        assert f"`{marker}`" in DOC
        assert any(marker in e.alerts for e in CATALOGUE.values())


VERBS = {
    Safety.DESTRUCTIVE: re.compile(r" (down|rm|volume rm|prune)\b"),
    Safety.MUTATING: re.compile(r" (up|restart|start|stop|kill)\b"),
}


@pytest.mark.parametrize("check", CHECKS)
def test_safety_class_matches_what_the_command_does(check: str) -> None:
    for command in CATALOGUE[check].commands:
        compose_verb = command.template.replace("$compose", "", 1).split("|")[0]
        expected = next(
            (s for s, verb in VERBS.items() if verb.match(compose_verb)), Safety.READ_ONLY
        )
        assert command.safety == expected, command.template


def test_network_checks_say_which_target_layers_they_rely_on() -> None:
    for entry in CATALOGUE.values():
        assert bool(entry.target_layers) == (entry.layer == Layer.NETWORK), entry.check
