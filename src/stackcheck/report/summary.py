"""The summary JSON: one document per run, for dashboards and scripts.

Its shape is specified by docs/summary.schema.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackcheck.report.baseline import Comparison
from stackcheck.report.escalation import Incident
from stackcheck.report.files import slug, write_atomic
from stackcheck.report.run import Row, Run


def _check(row: Row) -> dict[str, Any]:
    ref = row.result.ref
    check = row.result.check
    # A consequence carries no fix of its own: its root cause's fix comes first.
    commands = row.hint.commands if row.hint and row.caused_by is None else ()
    return {
        "name": ref.check,
        "stack": ref.stack,
        "service": ref.service,
        "target": ref.target,
        "replica": ref.replica,
        "replicas": row.replicas.to_json() if row.replicas else None,
        "key": row.label,
        "nodeid": row.result.nodeid,
        "outcome": row.result.outcome,
        "role": _role(row),
        "duration_s": row.result.duration_s,
        "runbook_step": check.step.link,
        "fix_step": check.fix.step.link,
        "remediation": [cmd for _, cmd in commands],
        "safety": [safety.value for safety, _ in commands],
        "caused_by": row.caused_by,
        "evidence": row.result.evidence,
    }


def _role(row: Row) -> str | None:
    if row.result.failing:
        return "consequence" if row.caused_by else "root_cause"
    return "blind_spot" if row.result.blind else None


def _incident(incident: Incident | None, run: Run) -> dict[str, Any] | None:
    if incident is None:
        return None
    age = incident.open_for(run.finished_at)
    return {
        "opened_at": incident.opened_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "open_for_s": round(max(age.total_seconds(), 0.0), 3),
        "runs": incident.run_count,
        "escalate": incident.escalate(run.finished_at),
        "note": incident.note,
    }


def document(
    run: Run,
    incidents: dict[str, Incident | None],
    comparisons: dict[str, Comparison] | None = None,
) -> dict[str, Any]:
    """``incidents``, ``comparisons``: each stack's incident and comparison with its
    baseline, by the stack's file-name slug."""
    compared = comparisons or {}
    changes = []
    for s in run.stacks:
        found = compared.get(slug(s.stack.name))
        if found is not None:
            changes += [{"stack": s.stack.name, **c.to_json(found.now)} for c in found.changes]
    return {
        "stack": ", ".join(s.stack.name for s in run.stacks),
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "duration_s": round(run.duration_s, 3),
        "partial": run.partial,
        "checks": [_check(row) for row in run.rows],
        "root_causes": [row.label for row in run.roots],
        "blind_spots": [row.label for s in run.stacks for row in s.blind_spots],
        "changes": changes,
        "stacks": [
            {
                "name": s.stack.name,
                "compose_project": s.stack.compose_project,
                "status": s.status,
                "root_causes": [row.label for row in s.roots],
                "blind_spots": [row.label for row in s.blind_spots],
                "incident": _incident(incidents.get(slug(s.stack.name)), run),
                "baseline_at": _baseline_at(compared.get(slug(s.stack.name))),
            }
            for s in run.stacks
        ],
    }


def _baseline_at(comparison: Comparison | None) -> str | None:
    if comparison is None or comparison.baseline_at is None:
        return None
    return comparison.baseline_at.isoformat()


def text(
    run: Run,
    incidents: dict[str, Incident | None],
    comparisons: dict[str, Comparison] | None = None,
) -> str:
    return json.dumps(document(run, incidents, comparisons), indent=2) + "\n"


def write(
    path: Path,
    run: Run,
    incidents: dict[str, Incident | None],
    comparisons: dict[str, Comparison] | None = None,
) -> None:
    write_atomic(path, text(run, incidents, comparisons))
