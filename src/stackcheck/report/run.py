"""A finished run as every output sees it: per stack, checks in causal order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stackcheck.config import Stack
from stackcheck.model import CheckRef
from stackcheck.report import causes
from stackcheck.report.hints import Hint, render
from stackcheck.report.results import CheckResult


@dataclass(frozen=True)
class Row:
    result: CheckResult
    label: str  # service:check, prefixed with stack/ when a run has several stacks
    caused_by: str | None  # label of the root cause; None for a root cause or a pass
    hint: Hint | None  # for failing checks only


@dataclass(frozen=True)
class StackRun:
    stack: Stack
    rows: list[Row]  # in causes.order: deeper services and layers first

    @property
    def healthy(self) -> bool:
        return not any(r.result.failing for r in self.rows)

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
    # Checks were deselected (-m, -k, --deselect): a pass says nothing of the rest.
    partial: bool

    @property
    def healthy(self) -> bool:
        return all(s.healthy for s in self.stacks)

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

        analysis = causes.analyse(stack, (r.ref for r in mine if r.failing))
        rows = [
            Row(
                result=r,
                label=label(r.ref),
                caused_by=label(analysis.cause[r.ref]) if r.ref in analysis.cause else None,
                hint=render(r.payload, label(r.ref)) if r.failing else None,
            )
            for r in sorted(mine, key=lambda r: causes.order(stack, r.ref))
        ]
        runs.append(StackRun(stack, rows))
    return Run(started_at, finished_at, runs, partial)
