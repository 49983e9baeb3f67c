"""The escalation clock: how long the current incident has been open.

The runbook escalates after 15 minutes, but each pytest run only lives for
seconds, so the incident is kept on disk: opened by the first failing run,
extended by every run after it, closed (the file removed) by a healthy run of
all the checks. The file also records the runs, for the incident note.

One clock per stack (``incident-<stack>.json``), so stacks sharing a reports
directory never touch each other's incident; a lock beside it makes concurrent
runs take turns.

The file is data, not instructions. It holds no path: the note is named by a
bare file name of this clock's own pattern and always written beside the clock
(any other name in the file gives way to one derived from the opening). Its
shape is checked whole before anything of it is used, and a file that is not
usable (not JSON, not a regular file, larger than ``CLOCK_READ_MAX`` bytes, a
time without a zone or from the future, a run record of the wrong shape)
starts a new incident, with one line saying so. It stays small: the first run and the last
``KEEP_RUNS - 1`` are kept, the runs between only counted, so a long incident
costs each run the same.

It also remembers which pages (``--notify``) were sent for the incident: each
of open, escalate and resolve is decided under the lock and marked before it is
sent, so it goes out once per incident, however many runs or rounds see it.
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

from stackcheck.report.files import WriteFailed, locked, read_bounded, write_atomic
from stackcheck.report.run import HEALTHY, Row, Run
from stackcheck.runbook import ESCALATE_AFTER_MIN, ESCALATION

ESCALATE_AFTER = timedelta(minutes=ESCALATE_AFTER_MIN)
# A clock file larger than this is not read (a hostile or broken file must not
# cost the run its memory); what this module writes stays under CLOCK_TARGET.
CLOCK_READ_MAX = 4 * 2**20
CLOCK_TARGET = 2**20
# Run records kept: the first run (the incident's start) and the latest ones.
KEEP_RUNS = 200
# Evidence longer than this is cut in the record (the summary has it whole).
EVIDENCE_KEEP = 4000
# A clock opened later than this after the run's own clock is refused.
CLOCK_SKEW = timedelta(minutes=1)
# The pages of an incident, in the order they are due.
OPEN, ESCALATE, RESOLVE = "open", "escalate", "resolve"
EVENTS = (OPEN, ESCALATE, RESOLVE)


def escalate_after(run: Run) -> timedelta:
    """The escalation time of the (one) stack of ``run``: its stack file's, or the runbook's."""
    if not run.stacks:
        return ESCALATE_AFTER
    return timedelta(minutes=run.stacks[0].stack.notify.escalate_after_min)


@dataclass
class Incident:
    opened_at: datetime
    note: str  # where this incident's note is written
    runs: list[dict[str, Any]] = field(default_factory=list)  # the records kept
    closed_at: datetime | None = None
    # Runs between the first and the kept latest ones, counted but not kept.
    omitted: int = 0
    # Pages already sent for this incident (kept in the file), and those this run sends.
    notified: list[str] = field(default_factory=list)
    due: list[str] = field(default_factory=list)
    # The stack's escalation time (``[notify] escalate_after_min``), not kept in the file.
    escalate_after: timedelta = ESCALATE_AFTER

    @property
    def run_count(self) -> int:
        """Every run of the incident, kept or only counted."""
        return len(self.runs) + self.omitted

    def open_for(self, now: datetime) -> timedelta:
        return (self.closed_at or now) - self.opened_at

    def escalate(self, now: datetime) -> bool:
        """Still open past the runbook's deadline (the stack's setting)."""
        return self.closed_at is None and self.open_for(now) >= self.escalate_after


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= EVIDENCE_KEEP:
        return text
    return f"{text[:EVIDENCE_KEEP]}… [cut: {len(text) - EVIDENCE_KEEP} more characters]"


def _root(run: Run, root: Row) -> dict[str, Any]:
    assert root.hint is not None  # every failing row has one
    return {
        "label": root.label,
        "fix": root.hint.check.fix.step.anchor,
        "fix_title": root.hint.check.fix.step.title,
        "fix_link": root.hint.check.fix.step.link,
        "evidence": _cut(root.result.evidence),
        "commands": [[safety.value, cmd] for safety, cmd in root.hint.commands],
        "consequences": [
            {"label": c.label, "evidence": _cut(c.result.evidence)} for c in run.consequences(root)
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


def note_path(clock: Path, opened_at: datetime) -> Path:
    """Where an incident's note goes: beside its clock, named after its opening."""
    return clock.parent / f"{clock.stem}-{opened_at.astimezone(UTC):%Y%m%dT%H%M%SZ}.md"


def _kept_note(clock: Path, claimed: Any, opened_at: datetime) -> Path:
    """The note the clock file names, if that is a note name of this clock's own
    (``incident-<stack>-<time>.md``, no directory); else the one ``note_path`` gives.
    Never a path from the file: a copied or tampered file writes only beside itself."""
    own = re.escape(clock.stem) + r"-\d{8}T\d{6}Z\.md"
    if isinstance(claimed, str) and re.fullmatch(own, claimed):
        return clock.parent / claimed
    return note_path(clock, opened_at)


class Unusable(Exception):
    """The clock file exists but cannot be used; the message says why, in a few words."""


def _str_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _valid_cause(cause: Any) -> bool:
    return (
        isinstance(cause, dict)
        and isinstance(cause.get("label"), str)
        and all(_str_or_none(cause.get(k)) for k in ("fix", "fix_title", "fix_link", "evidence"))
        and isinstance(cause.get("commands"), list)
        and all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(v, str) for v in c)
            for c in cause["commands"]
        )
        and isinstance(cause.get("consequences"), list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("label"), str)
            and _str_or_none(c.get("evidence"))
            for c in cause["consequences"]
        )
    )


def _valid_record(entry: Any) -> bool:
    """A run record as ``record`` writes it: every field the note reads, of its type."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("at"), str)
        and isinstance(entry.get("status"), str)
        and isinstance(entry.get("partial"), bool)
        and isinstance(entry.get("root_causes"), list)
        and all(_valid_cause(c) for c in entry["root_causes"])
    )


def _read(path: Path) -> bytes | None:
    """The clock file's bytes; None if there is none. Never follows a link, never blocks."""
    return read_bounded(
        path, CLOCK_READ_MAX, Unusable, f"larger than {CLOCK_READ_MAX // 2**20} MiB"
    )


def _parse(path: Path, data: bytes, now: datetime) -> Incident:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise Unusable("not valid JSON") from None
    if not isinstance(doc, dict):
        raise Unusable("not a JSON object")
    try:
        opened = datetime.fromisoformat(doc["opened_at"])
    except (KeyError, TypeError, ValueError):
        raise Unusable("opened_at is not an ISO 8601 time") from None
    if opened.tzinfo is None or opened.utcoffset() is None:
        raise Unusable("opened_at has no time zone")
    try:
        opened = opened.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Unusable("opened_at is out of range") from None
    if opened > now + CLOCK_SKEW:  # a clock from the future is no clock
        raise Unusable(f"opened_at {opened.isoformat()} is in the future")
    runs, omitted = doc.get("runs"), doc.get("omitted", 0)
    if not isinstance(runs, list) or not runs or not all(_valid_record(r) for r in runs):
        raise Unusable("runs is not a list of run records")
    if isinstance(omitted, bool) or not isinstance(omitted, int) or omitted < 0:
        raise Unusable("omitted is not a count")
    notified = doc.get("notified", [])
    if not isinstance(notified, list) or not all(isinstance(n, str) for n in notified):
        raise Unusable("notified is not a list of events")
    note = _kept_note(path, doc.get("note"), opened)
    known = [n for n in EVENTS if n in notified]  # anything else in the file is ignored
    return Incident(opened_at=opened, note=str(note), runs=runs, omitted=omitted, notified=known)


def load(path: Path, now: datetime) -> Incident | None:
    """The open incident of this clock file; None when there is none.

    Raises Unusable when there is a file but it cannot be used as a clock.
    """
    data = _read(path)
    return None if data is None else _parse(path, data, now)


def _text(incident: Incident) -> str:
    data = {
        "opened_at": incident.opened_at.isoformat(),
        "note": Path(incident.note).name,  # a name, never a path: see _kept_note
        "omitted": incident.omitted,
        "notified": incident.notified,
        "runs": incident.runs,
    }
    # Compact: the C encoder writes it (indenting is pure Python, several times slower).
    return json.dumps(data) + "\n"


def _fit(incident: Incident) -> str:
    """The clock file's text, with no more than KEEP_RUNS records and, if it can, under
    CLOCK_TARGET bytes: the records dropped are the oldest but the first."""
    while len(incident.runs) > KEEP_RUNS:
        del incident.runs[1]
        incident.omitted += 1
    text = _text(incident)
    if len(text.encode()) > CLOCK_TARGET:
        # Large records (long evidence, many root causes): drop by measured size,
        # then write once; the latest record always stays.
        sizes = [len(json.dumps(r).encode()) + 2 for r in incident.runs]
        excess = len(text.encode()) - CLOCK_TARGET
        drop = 0
        while excess > 0 and len(incident.runs) - drop > 2:
            excess -= sizes[1 + drop]
            drop += 1
        del incident.runs[1 : 1 + drop]
        incident.omitted += drop
        text = _text(incident)
    return text


def _due(incident: Incident, now: datetime) -> list[str]:
    """The pages this run sends: each event once per incident; resolve only after a page."""
    if incident.closed_at is not None:
        return [RESOLVE] if incident.notified and RESOLVE not in incident.notified else []
    due = [] if OPEN in incident.notified else [OPEN]
    if ESCALATE not in incident.notified and incident.escalate(now):
        due.append(ESCALATE)
    return due


def advance(
    path: Path,
    run: Run,
    note: Path | None = None,
    warn: Callable[[str], None] | None = None,
    notify: bool = False,
) -> Incident | None:
    """Move one stack's clock by one run; return the incident it belongs to, if any.

    ``run`` holds that stack only. ``note`` overrides where the incident's note
    goes; by default it is named after the incident's opening, beside the clock
    file. ``warn`` gets one line when a clock file was there but unusable.
    ``notify``: someone is paged; the incident's ``due`` says which pages this
    run sends, already marked as sent in the file. Raises WriteFailed when the
    clock cannot be kept.
    """
    with locked(path.with_name(path.name + ".lock")):
        unusable = None
        try:
            incident = load(path, run.finished_at)
        except Unusable as exc:
            incident, unusable = None, f"incident clock {path} was unusable ({exc})"
        if incident is None:
            if not run.roots:  # only a failure opens an incident; blindness is no verdict
                if unusable is not None and warn is not None:
                    warn(f"{unusable}: left as it is; the next failing run starts a new incident")
                return None
            incident = Incident(opened_at=run.started_at, note=str(note_path(path, run.started_at)))
        if note is not None:
            incident.note = str(note)
        incident.runs.append(record(run))
        incident.escalate_after = escalate_after(run)
        if run.status == HEALTHY:  # every check ran and passed: none failed, none blind
            incident.closed_at = run.started_at
        if notify:
            incident.due = _due(incident, run.finished_at)
            incident.notified += incident.due
        if incident.closed_at is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise WriteFailed(f"cannot remove {path}: {exc.strerror or exc}") from None
        else:
            write_atomic(path, _fit(incident))
        # Said once the new clock is in place: if it could not be, WriteFailed says so.
        if unusable is not None and warn is not None:
            warn(f"{unusable}: started a new incident")
        return incident


def _minutes(delta: timedelta, rounding: Callable[[float], int] = math.floor) -> str:
    return f"{rounding(delta.total_seconds() / 60)} min"


def line(incident: Incident | None, run: Run) -> str:
    """The escalation line that ends the terminal report."""
    if incident is None:
        return "No open incident."
    now = run.finished_at
    runs = incident.run_count
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
    after = incident.escalate_after
    if incident.escalate(now):
        return (
            f"ESCALATE: incident open for {_minutes(age)} ({since}), unresolved past "
            f"{after.total_seconds() / 60:g} min: {ESCALATION}."
        )
    return (
        f"Incident open for {_minutes(age)} ({since}); if still unresolved in "
        f"{_minutes(after - age, math.ceil)}, escalate: {ESCALATION}."
    )
