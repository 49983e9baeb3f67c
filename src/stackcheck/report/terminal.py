"""The "Remediation" section printed after pytest's own summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest import TerminalReporter

from stackcheck.report.catalogue import CATALOGUE, Layer, Safety
from stackcheck.report.escalation import Incident, line
from stackcheck.report.run import Run, StackRun

SAFETY_MARKUP = {
    Safety.READ_ONLY: {"green": True},
    Safety.MUTATING: {"yellow": True},
    Safety.DESTRUCTIVE: {"red": True, "bold": True},
}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _stack(tr: TerminalReporter, stack_run: StackRun) -> None:
    stack = stack_run.stack
    where = f"{stack.name} (compose project {stack.compose_project})"
    if stack_run.healthy:
        tr.write_line(f"{where}: healthy", green=True, bold=True)
    else:
        roots = stack_run.roots
        others = sum(len(stack_run.consequences(r)) for r in roots)
        tr.write_line(
            f"{where}: UNHEALTHY, {_plural(len(roots), 'root cause')}, "
            f"{_plural(others, 'consequence')}",
            red=True,
            bold=True,
        )
    for root in stack_run.roots:
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


def _passing_areas(tr: TerminalReporter, stack_run: StackRun) -> None:
    """One line per layer whose every check passed."""
    tr.write_line("")
    for layer in Layer:
        rows = [
            r
            for r in stack_run.rows
            if CATALOGUE[r.result.ref.check].layer == layer and r.result.outcome != "skipped"
        ]
        if rows and all(r.result.outcome == "passed" for r in rows):
            where = sorted({r.label.rsplit(":", 1)[0] for r in rows})
            tr.write_line(
                f"  ok  {layer.name.lower()}: {_plural(len(rows), 'check')} passed "
                f"({', '.join(where)})",
                green=True,
            )


def write(
    tr: TerminalReporter, run: Run, incident: Incident | None, outputs: Sequence[Path]
) -> None:
    tr.write_sep("=", "Remediation", red=not run.healthy, green=run.healthy, bold=True)
    for stack_run in run.stacks:
        _stack(tr, stack_run)
    tr.write_line("")
    escalate = incident is not None and incident.escalate(run.finished_at)
    tr.write_line(line(incident, run), red=escalate, bold=escalate)
    here = Path.cwd()
    shown = (p.relative_to(here) if p.is_relative_to(here) else p for p in outputs)
    tr.write_line("reports: " + ", ".join(map(str, shown)))
