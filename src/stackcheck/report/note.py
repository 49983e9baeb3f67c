"""The incident note: a Markdown draft the on-call engineer completes.

It is rebuilt from the incident's record (escalation.Incident) on every run
while the incident is open, and a last time by the run that closes it.

Most of what it quotes comes from hostile sources: health bodies, log lines,
PostgreSQL errors, service names, and the record file itself. None of it may
become Markdown (a heading, emphasis, a link, HTML, a broken table) or reach a
terminal as escape sequences: it is written through the helpers below, which
quote it in fenced blocks or code spans that it cannot close.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stackcheck.redact import strip_controls
from stackcheck.report import escalation
from stackcheck.report.baseline import Comparison
from stackcheck.report.escalation import Incident
from stackcheck.report.files import write_atomic
from stackcheck.report.run import Run
from stackcheck.runbook import POST_INCIDENT, POST_INCIDENT_STEP

_BACKTICKS = re.compile(r"`+")
# Markdown's inline syntax outside code: emphasis, code, links, images, HTML,
# entities, strikethrough, table pipes, and the backslash itself. (Block syntax
# such as "#" or "-" only counts at the start of a line, where this is never used.)
_INLINE_SYNTAX = re.compile(r"([\\`*_\[\]<>!&~|])")
# A runbook link as the runbook module writes it: a relative path and anchor.
# Anything else in the record (javascript:, an outside page) is shown, not linked.
_RUNBOOK_LINK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*(?:#[A-Za-z0-9._-]+)?")
NEWLINE_MARK = " ↵ "
# A consequence's evidence longer than this, or on several lines, is also
# quoted whole in a fenced block under its list item.
INLINE_MAX = 160


def _one_line(text: str) -> str:
    # A newline would end a list item, a table row or a heading.
    return strip_controls(text).replace("\n", NEWLINE_MARK)


def _ticks(text: str, least: int) -> str:
    # Longer than any backtick run inside: then nothing inside can close it.
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    return "`" * max(least, longest + 1)


def inline_code(text: str) -> str:
    """``text`` as one Markdown code span, on one line, that nothing in it can close."""
    text = _one_line(text)
    if not text:
        return "` `"  # "``" would be two backticks, not an empty span
    ticks = _ticks(text, 1)
    # A backtick at either end would join the delimiters; and a renderer strips
    # one space from each end when both ends are spaces. Padding both ends with
    # a space, which the renderer strips, keeps the text exactly as it was.
    if (
        text.startswith("`")
        or text.endswith("`")
        or (text.startswith(" ") and text.endswith(" ") and text.strip(" "))
    ):
        text = f" {text} "
    return f"{ticks}{text}{ticks}"


def table_cell(text: str) -> str:
    """``text`` as a code span inside a table cell, its pipes escaped.

    Tables are split into cells before code spans are parsed, so a code span
    alone does not protect a ``|``; the escaped one shows as ``|`` in the code.
    """
    return inline_code(text).replace("|", "\\|")


def escape_text(text: str) -> str:
    """``text`` as plain Markdown text on one line: its inline syntax backslash-escaped."""
    return _INLINE_SYNTAX.sub(r"\\\1", _one_line(text))


def fence(text: str, info: str = "text") -> list[str]:
    """``text`` verbatim in a fenced code block: opening line, text, closing line.

    Evidence is quoted whole: a fence longer than any backtick run inside holds it.
    """
    text = strip_controls(text)
    marker = _ticks(text, 3)
    return [f"{marker}{info}", text, marker]


def _indented(lines: list[str], indent: str = "  ") -> list[str]:
    # Under a list item: every line indented to the item's content, so the
    # block belongs to the item (blank lines need no indent).
    return [indent + line if line else line for line in "\n".join(lines).split("\n")]


def _runbook(cause: dict[str, Any]) -> list[str]:
    title, link = cause.get("fix_title"), cause.get("fix_link")
    if not (title and link):
        return []
    if _RUNBOOK_LINK.fullmatch(str(link)):
        return [f"Runbook: [{escape_text(str(title))}]({link})", ""]
    return [f"Runbook: {escape_text(str(title))} ({inline_code(str(link))})", ""]


def _consequence(consequence: dict[str, Any]) -> list[str]:
    label = inline_code(str(consequence.get("label")))
    # Trailing newlines say nothing and would make a one-line evidence a block.
    evidence = strip_controls(str(consequence.get("evidence") or "")).rstrip("\n")
    if not evidence:
        return [f"- {label}: failed"]
    first = evidence.split("\n", 1)[0]
    if first == evidence and len(first) <= INLINE_MAX:
        return [f"- {label}: {inline_code(first)}"]
    shown = first if len(first) <= INLINE_MAX else first[: INLINE_MAX - 1] + "…"
    return [f"- {label}: {inline_code(shown)}", *_indented(fence(evidence))]


def _root_cause(cause: dict[str, Any]) -> list[str]:
    lines = [f"### {inline_code(str(cause['label']))}", ""]
    lines += _runbook(cause)
    if cause.get("evidence"):
        lines += ["Evidence:", "", *fence(str(cause["evidence"])), ""]
    consequences = cause.get("consequences") or []
    if consequences:
        lines.append("Consequences (explained by this root cause):")
        for consequence in consequences:
            lines += _consequence(consequence)
        lines.append("")
    return lines


def _changes(comparison: Comparison | None) -> list[str]:
    """What changed since the last healthy run, as this run saw it."""
    if comparison is None or not comparison.changes:
        return []
    when = comparison.baseline_at
    assert when is not None  # changes come from a comparison with a baseline
    lines = [
        "## What changed since the last healthy run",
        "",
        f"Compared with the baseline of the healthy run of {escape_text(when.isoformat())}, "
        f"as seen by the run of {escape_text(comparison.now.isoformat())}:",
        "",
    ]
    lines += [f"- {escape_text(text)}" for text in comparison.lines()]
    return [*lines, ""]


def render(incident: Incident, run: Run, comparison: Comparison | None = None) -> str:
    # Stack names come from the stack file, but a heading must stay one line.
    stacks = ", ".join(escape_text(s.stack.name) for s in run.stacks)
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
        f"- Escalation: {_one_line(escalation.line(incident, run))}",
        "",
        "## Timeline",
        "",
        "| Run started (UTC) | Status | Root causes |",
        "|---|---|---|",
    ]
    for number, entry in enumerate(incident.runs):
        if number == 1 and incident.omitted:
            # The clock keeps the first run and the latest: the rest were counted.
            many = incident.omitted
            lines.append(f"| … | {many} more run{'' if many == 1 else 's'}, not kept | … |")
        # The record is a file on disk: its times and statuses are quoted too.
        causes = ", ".join(table_cell(str(c["label"])) for c in entry["root_causes"]) or "none"
        status = str(entry["status"]) + (" (partial run)" if entry.get("partial") else "")
        lines.append(f"| {escape_text(str(entry['at']))} | {escape_text(status)} | {causes} |")
    lines.append("")

    lines += _changes(comparison)
    unhealthy = [entry for entry in incident.runs if entry["root_causes"]]
    lines += ["## Root causes", ""]
    if unhealthy:
        lines += [
            f"As found by the last failing run ({escape_text(str(unhealthy[-1]['at']))}).",
            "",
        ]
        for cause in unhealthy[-1]["root_causes"]:
            lines += _root_cause(cause)

    lines += ["## Commands suggested", "", "Nothing was run by stackcheck.", ""]
    commands: list[str] = []
    seen: set[str] = set()
    for entry in incident.runs:
        for cause in entry["root_causes"]:
            for safety, cmd in cause["commands"]:
                if cmd not in seen:
                    seen.add(cmd)
                    # The comment stays on the command's line: a newline in a
                    # label would make a pasted block run the rest of it.
                    comment = _one_line(f"{safety}, for {cause['label']}")
                    commands.append(f"{strip_controls(str(cmd))}   # {comment}")
    lines += [*fence("\n".join(commands), "bash"), ""] if commands else ["```bash", "```", ""]

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
    # Whatever reached the note by another way: no control character leaves it.
    return strip_controls("\n".join(lines))


def write(path: Path, incident: Incident, run: Run, comparison: Comparison | None = None) -> None:
    write_atomic(path, render(incident, run, comparison))
