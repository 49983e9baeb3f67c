"""The incident note: a Markdown draft the on-call engineer completes.

It is rebuilt from the incident's record (escalation.Incident) on every run
while the incident is open, and a last time by the run that closes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stackcheck.report import escalation
from stackcheck.report.escalation import Incident
from stackcheck.report.files import write_atomic
from stackcheck.report.run import Run
from stackcheck.runbook import POST_INCIDENT, POST_INCIDENT_STEP


def _fence(text: str) -> list[str]:
    # Evidence is quoted verbatim: a fence longer than any backtick run inside holds it.
    longest = max((len(ticks) for ticks in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", text, fence]


def _root_cause(cause: dict[str, Any]) -> list[str]:
    lines = [f"### `{cause['label']}`", ""]
    if cause.get("fix_title") and cause.get("fix_link"):
        lines += [f"Runbook: [{cause['fix_title']}]({cause['fix_link']})", ""]
    if cause.get("evidence"):
        lines += ["Evidence:", "", *_fence(cause["evidence"]), ""]
    consequences = cause.get("consequences") or []
    if consequences:
        lines.append("Consequences (explained by this root cause):")
        lines += [f"- `{c['label']}`: {c.get('evidence') or 'failed'}" for c in consequences]
        lines.append("")
    return lines


def render(incident: Incident, run: Run) -> str:
    stacks = ", ".join(s.stack.name for s in run.stacks)
    status = "resolved" if incident.closed_at else "open"
    lines = [
        f"# Incident: API Service Down ({stacks})",
        "",
        "_Draft by stackcheck, rewritten by every run while the incident is open._",
        "_Complete it once the incident is resolved._",
        "",
        f"- Opened (first failing run): {incident.opened_at.isoformat()}",
        f"- Status: {status}"
        + (
            f", closed by the run of {incident.closed_at.isoformat()}" if incident.closed_at else ""
        ),
        f"- Escalation: {escalation.line(incident, run)}",
        "",
        "## Timeline",
        "",
        "| Run started (UTC) | Status | Root causes |",
        "|---|---|---|",
    ]
    for entry in incident.runs:
        causes = ", ".join(f"`{c['label']}`" for c in entry["root_causes"]) or "none"
        status = entry["status"] + (" (partial run)" if entry.get("partial") else "")
        lines.append(f"| {entry['at']} | {status} | {causes} |")
    lines.append("")

    unhealthy = [entry for entry in incident.runs if entry["root_causes"]]
    lines += ["## Root causes", ""]
    if unhealthy:
        lines += [f"As found by the last failing run ({unhealthy[-1]['at']}).", ""]
        for cause in unhealthy[-1]["root_causes"]:
            lines += _root_cause(cause)

    lines += ["## Commands suggested", "", "Nothing was run by stackcheck.", "", "```bash"]
    seen: set[str] = set()
    for entry in incident.runs:
        for cause in entry["root_causes"]:
            for safety, cmd in cause["commands"]:
                if cmd not in seen:
                    seen.add(cmd)
                    lines.append(f"{cmd}   # {safety}, for {cause['label']}")
    lines += ["```", ""]

    lines += [
        "## What was done",
        "",
        "_Who ran what, when, and what it changed._",
        "",
        "## Root cause analysis",
        "",
        "_Why it happened; why the checks found it when they did._",
        "",
        f"## Post-incident checklist ([runbook]({POST_INCIDENT_STEP.link}))",
        "",
        *(f"- [ ] {item}" for item in POST_INCIDENT),
        "",
    ]
    return "\n".join(lines)


def write(path: Path, incident: Incident, run: Run) -> None:
    write_atomic(path, render(incident, run))
