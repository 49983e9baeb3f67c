"""The escalation clock: how long the current incident has been open.

The runbook escalates after 15 minutes, but each pytest run only lives for
seconds, so the incident is kept on disk: opened by the first failing run,
extended by every run after it, closed (the file removed) by a healthy run of
all the checks. The file also records each run, for the incident note.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stackcheck.report.catalogue import ESCALATE_AFTER_MIN, ESCALATION
from stackcheck.report.run import Row, Run

ESCALATE_AFTER = timedelta(minutes=ESCALATE_AFTER_MIN)


@dataclass
class Incident:
    opened_at: datetime
    note: str  # where this incident's note is written
    runs: list[dict[str, Any]] = field(default_factory=list)
    closed_at: datetime | None = None

    def open_for(self, now: datetime) -> timedelta:
        return (self.closed_at or now) - self.opened_at

    def escalate(self, now: datetime) -> bool:
        """Still open past the runbook's deadline."""
        return self.closed_at is None and self.open_for(now) >= ESCALATE_AFTER


def _root(run: Run, root: Row) -> dict[str, Any]:
    assert root.hint is not None  # every failing row has one
    return {
        "label": root.label,
        "fix": root.hint.entry.fix,
        "evidence": root.result.evidence,
        "commands": [[safety.value, cmd] for safety, cmd in root.hint.commands],
        "consequences": [
            {"label": c.label, "evidence": c.result.evidence} for c in run.consequences(root)
        ],
    }


def record(run: Run) -> dict[str, Any]:
    """What the incident keeps of one run: enough to write its note later."""
    return {
        "at": run.started_at.isoformat(),
        "status": "healthy" if run.healthy else "unhealthy",
        "partial": run.partial,
        "root_causes": [_root(run, root) for root in run.roots],
    }


def load(path: Path) -> Incident | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Incident(
            opened_at=datetime.fromisoformat(data["opened_at"]),
            note=str(data["note"]),
            runs=list(data["runs"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged clock must not hide the incident: start a new one.
        return None


def _save(path: Path, incident: Incident) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "opened_at": incident.opened_at.isoformat(),
        "note": incident.note,
        "runs": incident.runs,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


def advance(path: Path, run: Run, note: Path | None = None) -> Incident | None:
    """Move the clock by one run; return the incident it belongs to, if any.

    ``note`` overrides where the incident's note goes; by default it is named
    after the incident's opening, beside the clock file.
    """
    incident = load(path)
    if incident is None:
        if run.healthy:
            return None
        default = path.parent / f"incident-{run.started_at:%Y%m%dT%H%M%SZ}.md"
        incident = Incident(opened_at=run.started_at, note=str(default))
    if note is not None:
        incident.note = str(note)
    incident.runs.append(record(run))
    if run.healthy and not run.partial:
        incident.closed_at = run.started_at
        path.unlink(missing_ok=True)
    else:
        _save(path, incident)
    return incident


def _minutes(delta: timedelta, rounding: Callable[[float], int] = math.floor) -> str:
    return f"{rounding(delta.total_seconds() / 60)} min"


def line(incident: Incident | None, run: Run) -> str:
    """The escalation line that ends the terminal report."""
    if incident is None:
        return "No open incident."
    now = run.finished_at
    runs = len(incident.runs)
    since = (
        f"first failing run {incident.opened_at:%Y-%m-%d %H:%M:%S %Z}, "
        f"{runs} run{'' if runs == 1 else 's'}"
    )
    age = incident.open_for(now)
    if incident.closed_at is not None:
        return f"Incident resolved after {_minutes(age)} ({since}); complete its note."
    if run.healthy:
        return (
            f"Incident open for {_minutes(age)} ({since}): this run passed, but only "
            "a run of all the checks (no -m, -k or --deselect) closes it."
        )
    if incident.escalate(now):
        return (
            f"ESCALATE: incident open for {_minutes(age)} ({since}), unresolved past "
            f"{ESCALATE_AFTER_MIN} min: {ESCALATION}."
        )
    return (
        f"Incident open for {_minutes(age)} ({since}); if still unresolved in "
        f"{_minutes(ESCALATE_AFTER - age, math.ceil)}, escalate: {ESCALATION}."
    )
