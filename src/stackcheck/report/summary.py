"""The summary JSON: one document per run, for dashboards and scripts.

Its shape is specified by docs/summary.schema.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackcheck.report.catalogue import CATALOGUE
from stackcheck.report.escalation import Incident
from stackcheck.report.hints import link
from stackcheck.report.run import Row, Run


def _status(healthy: bool) -> str:
    return "healthy" if healthy else "unhealthy"


def _check(row: Row) -> dict[str, Any]:
    ref = row.result.ref
    entry = CATALOGUE[ref.check]
    commands = row.hint.commands if row.hint else ()
    return {
        "name": ref.check,
        "stack": ref.stack,
        "service": ref.service,
        "target": ref.target,
        "key": row.label,
        "nodeid": row.result.nodeid,
        "outcome": row.result.outcome,
        "duration_s": row.result.duration_s,
        "runbook_step": link(entry.step),
        "fix_step": link(entry.fix),
        "remediation": [cmd for _, cmd in commands],
        "safety": [safety.value for safety, _ in commands],
        "caused_by": row.caused_by,
        "evidence": row.result.evidence,
    }


def _incident(incident: Incident | None, run: Run) -> dict[str, Any] | None:
    if incident is None:
        return None
    age = incident.open_for(run.finished_at)
    return {
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "open_for_s": round(age.total_seconds(), 3),
        "runs": len(incident.runs),
        "escalate": incident.escalate(run.finished_at),
        "note": incident.note,
    }


def document(run: Run, incident: Incident | None) -> dict[str, Any]:
    return {
        "stack": ", ".join(s.stack.name for s in run.stacks),
        "status": _status(run.healthy),
        "started_at": run.started_at.isoformat(),
        "duration_s": round(run.duration_s, 3),
        "partial": run.partial,
        "checks": [_check(row) for row in run.rows],
        "root_causes": [row.label for row in run.roots],
        "stacks": [
            {
                "name": s.stack.name,
                "compose_project": s.stack.compose_project,
                "status": _status(s.healthy),
                "root_causes": [row.label for row in s.roots],
            }
            for s in run.stacks
        ],
        "incident": _incident(incident, run),
    }


def write(path: Path, run: Run, incident: Incident | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(run, incident), indent=2) + "\n", encoding="utf-8")
