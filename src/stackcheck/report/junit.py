"""The JUnit file, brought into line with the causal analysis once pytest has written it.

pytest writes each failure's message as the report arrives, before any root
cause is known. Afterwards, for the dashboards that read only this file:

- the test suite is named after the stack(s) and carries the run's status, root
  causes and blind spots as testsuite properties (valid under xunit2);
- a consequence's ``<failure>`` begins "consequence of ROOT — fix that first"
  and carries only read-only commands;
- a check that could not check is an ``<error>`` (pytest already writes a
  setup-phase one so; this covers a check that raised CouldNotCheck itself).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from stackcheck.report.files import WriteFailed, write_atomic
from stackcheck.report.run import Row, Run


def _address(nodeid: str) -> tuple[str, str]:
    """pytest's (classname, name) for a node id, without the junit_prefix."""
    parts = nodeid.split("::")
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def _find(suite: ET.Element, row: Row) -> ET.Element | None:
    classname, name = _address(row.result.nodeid)
    for case in suite.iter("testcase"):
        if case.get("name") == name and (case.get("classname") or "").endswith(classname):
            return case
    return None


def rewrite(path: Path, run: Run) -> str | None:
    """Rewrite ``path`` in place (atomically); a one-line problem, or None."""
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        return f"cannot read the JUnit file {path} to add the root causes: {exc}"
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        suite.set("name", ", ".join(s.stack.name for s in run.stacks))
        properties = suite.find("properties")
        if properties is None:
            properties = ET.Element("properties")
            suite.insert(0, properties)
        props = [
            ("stackcheck.status", run.status),
            ("stackcheck.partial", str(run.partial).lower()),
        ]
        props += [("stackcheck.root_cause", row.label) for row in run.roots]
        props += [("stackcheck.blind_spot", row.label) for s in run.stacks for row in s.blind_spots]
        for name, value in props:
            ET.SubElement(properties, "property", name=name, value=value)
        for row in run.rows:
            case = _find(suite, row)
            if case is None:
                continue
            if row.caused_by is not None and row.hint is not None:
                failure = case.find("failure")
                if failure is not None:
                    text = row.hint.consequence_text(row.caused_by)
                    failure.set(
                        "message",
                        text.splitlines()[0] + ": " + (row.result.evidence or "").split("\n")[0],
                    )
                    failure.text = text
            elif row.result.blind:
                failure = case.find("failure")
                if failure is not None:
                    failure.tag = "error"
    try:
        write_atomic(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
    except WriteFailed as exc:
        return str(exc)
    return None
