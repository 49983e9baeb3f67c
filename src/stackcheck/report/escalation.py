"""The escalation clock: how long the current incident has been open.

The runbook escalates after 15 minutes, but each pytest run only lives for
seconds, so the incident is kept on disk: opened by the first failing run,
extended by every run after it, closed (the file removed) by a healthy run of
all the checks. The file also records each run, for the incident note.

One clock per stack (``incident-<stack>.json``), so stacks sharing a reports
directory never touch each other's incident; a lock beside it makes concurrent
runs take turns. The file is data, not trust: a broken or odd one starts a new
incident, and the note is always written beside it, whatever name it claims.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stackcheck.report.files import locked, write_atomic
from stackcheck.report.run import HEALTHY, Row, Run
from stackcheck.runbook import ESCALATE_AFTER_MIN, ESCALATION

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
        "fix": root.hint.check.fix.step.anchor,
        "fix_title": root.hint.check.fix.step.title,
        "fix_link": root.hint.check.fix.step.link,
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
        "status": run.status,
        "partial": run.partial,
        "root_causes": [_root(run, root) for root in run.roots],
    }


def _note_name(value: Any, default: str) -> str:
    """The note's file name from the clock file: a bare name of ours, or the default."""
    name = Path(str(value)).name if isinstance(value, str) else ""
    return name if re.fullmatch(r"incident-[A-Za-z0-9._-]+\.md", name) else default


def load(path: Path, now: datetime) -> Incident | None:
    """The open incident of this clock file; None when there is none or it is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        opened = datetime.fromisoformat(data["opened_at"])
        runs = data["runs"]
        if (
            opened.tzinfo is None
            or opened > now + timedelta(minutes=1)  # a clock from the future is no clock
            or not isinstance(runs, list)
            or not all(isinstance(r, dict) and isinstance(r.get("at"), str) for r in runs)
        ):
            return None
        note = path.parent / _note_name(data.get("note"), f"{path.stem}-{opened:%Y%m%dT%H%M%SZ}.md")
        return Incident(opened_at=opened.astimezone(UTC), note=str(note), runs=list(runs))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # A damaged clock must not hide the incident: start a new one.
        return None


def _save(path: Path, incident: Incident) -> None:
    data = {
        "opened_at": incident.opened_at.isoformat(),
        "note": Path(incident.note).name,
        "runs": incident.runs,
    }
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def advance(path: Path, run: Run, note: Path | None = None) -> Incident | None:
    """Move one stack's clock by one run; return the incident it belongs to, if any.

    ``run`` holds that stack only. ``note`` overrides where the incident's note
    goes; by default it is named after the incident's opening, beside the clock
    file. Raises WriteFailed when the clock cannot be kept.
    """
    with locked(path.with_name(path.name + ".lock")):
        incident = load(path, run.finished_at)
        if incident is None:
            if not run.roots:  # only a failure opens an incident; blindness is no verdict
                return None
            default = path.parent / f"{path.stem}-{run.started_at:%Y%m%dT%H%M%SZ}.md"
            incident = Incident(opened_at=run.started_at, note=str(default))
        if note is not None:
            incident.note = str(note)
        incident.runs.append(record(run))
        if run.status == HEALTHY:  # every check ran and passed: none failed, none blind
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
    if not run.roots:
        why = (
            "could not check everything"
            if run.stacks and run.stacks[0].blind_spots
            else "was partial"
        )
        return (
            f"Incident open for {_minutes(age)} ({since}): no check failed, but this run {why}; "
            "only a run of all the checks, all seen and passing, closes it."
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
