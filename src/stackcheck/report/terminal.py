"""The "Remediation" section printed after pytest's own summary."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pytest import TerminalReporter

from stackcheck.definition import Layer, Safety
from stackcheck.report.baseline import Comparison
from stackcheck.report.escalation import Incident, line
from stackcheck.report.run import UNKNOWN, Run, StackRun

SAFETY_MARKUP = {
    Safety.READ_ONLY: {"green": True},
    Safety.MUTATING: {"yellow": True},
    Safety.DESTRUCTIVE: {"red": True, "bold": True},
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _stack(
    tr: TerminalReporter,
    run: Run,
    stack_run: StackRun,
    incident: Incident | None,
    clock_unknown: bool,
    comparison: Comparison | None = None,
) -> None:
    stack = stack_run.stack
    where = f"{stack.name} (compose project {stack.compose_project})"
    roots = stack_run.roots
    blind = stack_run.blind_spots
    if stack_run.failed:
        others = sum(len(stack_run.consequences(r)) for r in roots)
        tr.write_line(
            f"{where}: UNHEALTHY, {_plural(len(roots), 'root cause')}, "
            f"{_plural(others, 'consequence')}"
            + (f", {_plural(len(blind), 'check')} could not check" if blind else ""),
            red=True,
            bold=True,
        )
    elif stack_run.status == UNKNOWN:
        why = (
            f"{_plural(len(blind), 'check')} could not check"
            if blind
            else "this run was partial (not every check ran)"
        )
        tr.write_line(f"{where}: UNKNOWN, no check failed, but {why}", yellow=True, bold=True)
    else:
        tr.write_line(f"{where}: healthy", green=True, bold=True)
    # Blind spots first: what the checker could not see may hide the real cause.
    reasons: dict[str, list[str]] = {}
    for row in blind:
        reasons.setdefault(row.result.evidence or "unknown reason", []).append(row.label)
    for reason, labels in reasons.items():
        tr.write_line("")
        tr.write_line(f"BLIND SPOT, could not check {_plural(len(labels), 'check')}:", yellow=True)
        tr.write_line(f"    {reason}")
        tr.write_line(f"    checks: {', '.join(labels)}")
    # Then what changed, before the root causes it may explain.
    if comparison is not None:
        _changes(tr, comparison, stack_run)
    for root in roots:
        hint = root.hint
        assert hint is not None  # every failing row has one
        tr.write_line("")
        tr.write_line(f"ROOT CAUSE {hint.headline}", red=True, bold=True)
        for safety, cmd in hint.commands:
            tr.write(f"    [{safety.value}]".ljust(18), **SAFETY_MARKUP[safety])
            tr.write_line(cmd)
        for text in hint.detail_lines():
            tr.write_line(f"    {text}")
        consequences = stack_run.consequences(root)
        if consequences:
            tr.write_line(f"    consequences ({len(consequences)}):")
        for row in consequences:
            evidence = (row.result.evidence or row.result.outcome).splitlines()[0]
            tr.write_line(f"      <- {row.label}: {evidence}", yellow=True)
    _passing_areas(tr, stack_run)
    if clock_unknown:
        # Never "no open incident" when the clock could not even be read.
        tr.write_line(
            "Incident clock unknown: it could not be kept in the reports directory (see "
            "'reports:' below); the runbook escalates 15 min after the first failure.",
            yellow=True,
        )
    else:
        tr.write_line(line(incident, run.only(stack_run)))


def _changes(tr: TerminalReporter, comparison: Comparison, stack_run: StackRun) -> None:
    """What changed since the last healthy run: before the causes it may explain.

    Shown on every run that has changes (a healthy run too: it then becomes the
    new baseline); on a run that is not healthy, also that nothing changed, or
    that there is no baseline to compare with.
    """
    if not comparison.changes and stack_run.healthy:
        return
    tr.write_line("")
    if not comparison.changes:
        if comparison.baseline_at is None:
            tr.write_line(comparison.heading())
        else:
            tr.write_line(f"{comparison.heading()}: nothing that stackcheck records")
        return
    tr.write_line(f"{comparison.heading()}:", yellow=True, bold=True)
    for text in comparison.lines():
        tr.write_line(f"    {text}", yellow=True)


def _passing_areas(tr: TerminalReporter, stack_run: StackRun) -> None:
    """One line per layer whose every check passed."""
    tr.write_line("")
    for layer in Layer:
        rows = [
            r
            for r in stack_run.rows
            if r.result.check.layer == layer and r.result.outcome != "skipped"
        ]
        if rows and all(r.result.outcome == "passed" for r in rows):
            where = sorted({r.label.rsplit(":", 1)[0] for r in rows})
            tr.write_line(
                f"  ok  {layer.name.lower()}: {_plural(len(rows), 'check')} passed "
                f"({', '.join(where)})",
                green=True,
            )


def write(
    tr: TerminalReporter,
    run: Run,
    incidents: dict[str, Incident | None],
    outputs: Sequence[Path],
    problems: Sequence[str],
    clock_unknown: Collection[str] = (),
    comparisons: Mapping[str, Comparison] | None = None,
) -> None:
    healthy = run.healthy
    tr.write_sep("=", "Remediation", red=not healthy, green=healthy, bold=True)
    for stack_run in run.stacks:
        name = stack_run.stack.name
        comparison = (comparisons or {}).get(name)
        _stack(tr, run, stack_run, incidents.get(name), name in clock_unknown, comparison)
        tr.write_line("")
    here = Path.cwd()
    shown = (p.relative_to(here) if p.is_relative_to(here) else p for p in outputs)
    tr.write_line("reports: " + (", ".join(map(str, shown)) or "none written"))
    for problem in problems:
        tr.write_line(f"reports: {problem}", yellow=True)
