"""Under `pytest -n 2` the controller alone reports, with what the workers found."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import xmlschema
from reportbench import DB_STOPPED, SCHEMAS, CheckRun

pytest_plugins = ("pytester",)


def verdicts(summary: dict[str, Any]) -> dict[str, tuple[str, str | None, list[str]]]:
    return {c["key"]: (c["outcome"], c["caused_by"], c["remediation"]) for c in summary["checks"]}


def test_two_workers_report_what_one_process_does(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run("--reports-dir=serial")
    serial = json.loads((checkrun.path / "serial" / "summary.json").read_text())

    result = checkrun.run("-n", "2", "--junitxml=junit.xml", subprocess=True)
    result.assert_outcomes(failed=len(DB_STOPPED), passed=18 - len(DB_STOPPED))
    assert "created: 2/2 workers" in result.stdout.str()
    summary = checkrun.summary()
    assert verdicts(summary) == verdicts(serial)
    assert summary["root_causes"] == ["db:container_running"]
    assert result.stdout.str().count("ROOT CAUSE ") == 1

    # Written once, by the controller: one run on the clock, one note.
    names = {p.name for p in checkrun.reports.iterdir()}
    notes = {n for n in names if n.startswith("incident-") and n.endswith(".md")}
    assert names - notes == {"incident.json", "stackcheck.prom", "summary.json"}
    assert len(notes) == 1
    assert summary["incident"]["runs"] == 1

    junit = checkrun.path / "junit.xml"
    xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd").validate(junit)
    messages = [f.get("message", "") for f in ET.parse(junit).iter("failure")]
    assert len(messages) == len(DB_STOPPED)
    assert any(m.startswith("db:container_running: Start a stopped container") for m in messages)
