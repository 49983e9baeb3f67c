"""A finished run as every output sees it: per stack, checks in causal order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from stackcheck.config import Stack
from stackcheck.model import CheckRef
from stackcheck.report import causes
from stackcheck.report.hints import Hint, render
from stackcheck.report.results import CheckResult

HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


@dataclass(frozen=True)
class Row:
    result: CheckResult
    label: str  # service:check, prefixed with stack/ when a run has several stacks
    caused_by: str | None  # label of the root cause; None for a root cause or a pass
    hint: Hint | None  # for failing checks only
    # A failing check of one replica: which replicas fail it, how many serve.
    replicas: Replicas | None = None


@dataclass(frozen=True)
class Replicas:
    """One check on the replicas of a scaled service, as a failure of one of them shows it."""

    service: str
    count: int  # containers the service runs
    failing: tuple[int, ...]  # replicas on which this check failed
    running: tuple[int, ...] | None  # replicas whose container runs (None: not known)

    @property
    def total(self) -> bool:
        """Every replica fails it: the service is down, not one replica of it."""
        return len(self.failing) >= self.count

    def text(self) -> str:
        numbers = ", ".join(f"#{n}" for n in self.failing)
        what = "service down" if self.total else "partial outage"
        line = f"{what}: fails on {len(self.failing)} of {self.count} replicas of {self.service} ({numbers})"
        if self.running is None:
            return line
        serving = ", ".join(f"#{n}" for n in self.running) or "none"
        return f"{line}; {len(self.running)} of {self.count} serving (running: {serving})"

    def to_json(self) -> dict[str, object]:
        return {
            "count": self.count,
            "failing": list(self.failing),
            "running": None if self.running is None else list(self.running),
            "outage": "total" if self.total else "partial",
        }


def status(failed: bool, blind: bool, partial: bool) -> str:
    """unhealthy: a check failed; unknown: none failed, but not every check was seen."""
    if failed:
        return UNHEALTHY
    return UNKNOWN if blind or partial else HEALTHY


@dataclass(frozen=True)
class StackRun:
    stack: Stack
    rows: list[Row]  # in causes.order: deeper services and layers first
    # Not every check of the stack ran to a verdict (-k, -m, node ids, -x...).
    partial: bool

    @property
    def failed(self) -> bool:
        return any(r.result.failing for r in self.rows)

    @property
    def blind_spots(self) -> list[Row]:
        return [r for r in self.rows if r.result.blind]

    @property
    def status(self) -> str:
        return status(self.failed, bool(self.blind_spots), self.partial)

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY

    @property
    def roots(self) -> list[Row]:
        return [r for r in self.rows if r.result.failing and r.caused_by is None]

    def consequences(self, root: Row) -> list[Row]:
        return [r for r in self.rows if r.caused_by == root.label]


@dataclass(frozen=True)
class Run:
    started_at: datetime
    finished_at: datetime
    stacks: list[StackRun]
    partial: bool

    @property
    def status(self) -> str:
        return status(
            any(s.failed for s in self.stacks),
            any(s.blind_spots for s in self.stacks),
            self.partial,
        )

    @property
    def healthy(self) -> bool:
        return self.status == HEALTHY

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def rows(self) -> list[Row]:
        return [r for s in self.stacks for r in s.rows]

    @property
    def roots(self) -> list[Row]:
        return [r for s in self.stacks for r in s.roots]

    def consequences(self, root: Row) -> list[Row]:
        return [r for s in self.stacks for r in s.consequences(root)]

    def only(self, stack_run: StackRun) -> Run:
        """This run as one stack's reports see it."""
        return Run(self.started_at, self.finished_at, [stack_run], stack_run.partial)


def replica_counts(results: Sequence[CheckResult]) -> dict[str, int]:
    """How many containers each scaled service runs, as the checks of its replicas saw it."""
    seen: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for result in results:
        ref = result.ref
        if ref.replica is None:
            continue
        seen.setdefault(ref.service, set()).add(ref.replica)
        told = result.payload.get("replicas")
        if isinstance(told, dict) and isinstance(told.get("count"), int):
            counts[ref.service] = max(counts.get(ref.service, 0), told["count"])
    return {s: max(len(n), counts.get(s, 0)) for s, n in seen.items()}


def _replicas(
    result: CheckResult, failing: Mapping[CheckRef, object], counts: Mapping[str, int]
) -> Replicas | None:
    ref = result.ref
    if ref.replica is None or ref.service not in counts:
        return None
    numbers = sorted(
        f.replica
        for f in failing
        if f.replica is not None
        and (f.service, f.target, f.check) == (ref.service, ref.target, ref.check)
    )
    told = result.payload.get("replicas")
    running = None
    if isinstance(told, dict) and isinstance(told.get("running"), list):
        running = tuple(sorted(n for n in told["running"] if isinstance(n, int)))
    return Replicas(ref.service, counts[ref.service], tuple(numbers), running)


def build(
    results: Sequence[CheckResult],
    stacks: Sequence[Stack],
    started_at: datetime,
    finished_at: datetime,
    partial: bool,
) -> Run:
    known = {s.name: s for s in stacks}
    for result in results:
        if result.ref.stack not in known:  # not registered: no graph, but still reported
            project = str(result.payload.get("compose_project", result.ref.stack))
            known[result.ref.stack] = Stack(Path(), result.ref.stack, project, {})
    several = len(known) > 1
    runs = []
    for stack in known.values():
        mine = [r for r in results if r.ref.stack == stack.name]
        if not mine:
            continue

        def label(ref: CheckRef) -> str:
            return f"{ref.stack}/{ref.key}" if several else ref.key

        checks = {r.ref: r.check for r in mine}
        failing = {r.ref: r.check for r in mine if r.failing}
        counts = replica_counts(mine)
        analysis = causes.analyse(stack, failing, counts)
        rows = []
        for r in sorted(mine, key=lambda r: causes.order(stack, r.ref, checks[r.ref])):
            hint = render(r.payload, label(r.ref)) if r.failing else None
            replicas = _replicas(r, failing, counts) if r.failing else None
            if hint is not None and replicas is not None:
                hint = replace(hint, replicas=replicas.text())
            caused_by = label(analysis.cause[r.ref]) if r.ref in analysis.cause else None
            rows.append(Row(r, label(r.ref), caused_by, hint, replicas))
        runs.append(StackRun(stack, rows, partial))
    return Run(started_at, finished_at, runs, partial)
