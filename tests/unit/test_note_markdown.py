"""The incident note quotes hostile text without letting it become Markdown.

Evidence, labels and commands come from health bodies, log lines, PostgreSQL
errors, service names and a record file on disk. The checks below read the note
the way CommonMark does (code spans, fences, GFM table cells) in plain Python;
where markdown-it-py is importable they also render it and look at the tokens.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import stackcheck
from stackcheck.report import note
from stackcheck.report.escalation import Incident
from stackcheck.report.note import escape_text, fence, inline_code, strip_controls, table_cell
from stackcheck.report.run import Run

try:
    from markdown_it import MarkdownIt
except ImportError:  # not a dependency: the text checks below stand alone
    MarkdownIt = None

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
TERMINAL_ATTACK = "\x1b]0;pwned\x07\x1b[2Jcleared"

HOSTILE = [
    "db:container_running",
    "*pool* exhausted",
    "`",
    "``",
    "a`b",
    "`x",
    "x`",
    "` `",
    " a ",
    "   ",
    "",
    "a```b``c",
    "line one\nline two\r\nthree",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "a|b||c",
    "# heading\n- item",
    TERMINAL_ATTACK,
    "nul\x00del\x7fc1\x85end",
    "\\`escaped\\`",
]


def renderer() -> Any:
    assert MarkdownIt is not None
    return MarkdownIt("commonmark").enable("table")


def code_span_content(span: str) -> str:
    """What CommonMark shows for ``span``, which must be exactly one code span."""
    assert "\n" not in span
    opening = re.match(r"`+", span)
    assert opening, span
    ticks = opening.group()
    assert span.endswith(ticks) and len(span) >= 2 * len(ticks), span
    inner = span[len(ticks) : len(span) - len(ticks)]
    assert inner, span  # "``" is two backticks, not a span
    # Nothing inside may close the span: no backtick run of the same length, and
    # none touching the delimiters (it would lengthen them).
    assert all(len(run) != len(ticks) for run in re.findall(r"`+", inner)), span
    assert not inner.startswith("`") and not inner.endswith("`"), span
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]
    return inner


def one_line(text: str) -> str:
    return strip_controls(text).replace("\n", note.NEWLINE_MARK)


def unescaped(text: str, chars: str) -> list[str]:
    """The characters of ``chars`` in ``text`` that no backslash escapes."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in chars:
            found.append(text[i])
        i += 1
    return found


# strip_controls


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TERMINAL_ATTACK, "cleared"),
        ("\x1b[31mERROR\x1b[0m done", "ERROR done"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-ended
        ("a\x1b(Bb\x1bcc", "abc"),  # two-character escapes
        ("\x9b2Jx\x9d0;t\x07y", "xy"),  # the 8-bit (C1) forms
        ("\x1b]0;unterminated\nnext line", "\nnext line"),  # never past the line
        ("nul\x00 cr\r\n del\x7f nel\x85 bell\x07", "nul cr\n del nel bell"),
        ("tab\tand\nnewline stay, as does ünïcödé ↵", "tab\tand\nnewline stay, as does ünïcödé ↵"),
    ],
)
def test_strip_controls_removes_escape_sequences_whole(text: str, expected: str) -> None:
    assert strip_controls(text) == expected


def test_strip_controls_is_linear_on_hostile_input() -> None:
    # As for redaction: an absolute limit in a subprocess, far above the ~0.1 s
    # these take and far below what a quadratic scan of 200,000 characters takes.
    script = (
        "from stackcheck.report.note import strip_controls\n"
        "for unit in ['\\x1b]', '\\x9d', '\\x1b[', '\\x1b[0', '\\x1b', '\\x1b]\\x9d', 'a']:\n"
        "    strip_controls(unit * (200_000 // len(unit)))\n"
    )
    src = str(Path(stackcheck.__file__).parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PYTHONPATH": src, "PATH": ""},
    )
    assert done.returncode == 0, done.stderr


# inline_code, table_cell


@pytest.mark.parametrize("text", HOSTILE)
def test_inline_code_is_one_span_showing_the_text_exactly(text: str) -> None:
    span = inline_code(text)
    expected = one_line(text) or " "
    assert code_span_content(span) == expected
    if MarkdownIt is not None:
        tokens = renderer().parseInline(span)[0].children
        assert [t.type for t in tokens] == ["code_inline"]
        assert tokens[0].content == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_table_cell_keeps_the_row_in_its_columns(text: str) -> None:
    cell = table_cell(text)
    assert unescaped(cell, "|") == []
    # GFM turns "\|" back into "|" before it reads the code span.
    assert code_span_content(cell.replace("\\|", "|")) == (one_line(text) or " ")
    if MarkdownIt is not None:
        table = f"| a | b |\n|---|---|\n| {cell} | x |\n"
        tokens = renderer().parse(table)
        cells = [t for t in tokens if t.type == "inline"][2:]
        assert len(cells) == 2
        assert [c.type for c in cells[0].children] == ["code_inline"]
        assert cells[0].children[0].content == (one_line(text) or " ")


# escape_text


@pytest.mark.parametrize("text", [*HOSTILE, "Start a *stopped* [container] <b>&amp; ~~x~~ _y_"])
def test_escape_text_is_plain_text(text: str) -> None:
    escaped = escape_text(text)
    assert "\n" not in escaped
    assert unescaped(escaped, "\\`*_[]<>!&~|") == []
    if MarkdownIt is not None:
        # Mid-line, where the note uses it (a line's start has block syntax).
        rendered = renderer().render(f"x {escaped} x")
        assert rendered == f"<p>x {html.escape(one_line(text), quote=False)} x</p>\n"


def test_escape_text_leaves_timestamps_and_names_readable() -> None:
    for text in ("2026-11-28T02:34:45+00:00", "residency-scheduler", "unhealthy (partial run)"):
        assert escape_text(text) == text


# fence


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "```\nnot the end\n```",
        "````` five\n``````",
        NGINX_502,
        "# heading\n*pool*\n<script>x</script>\n| a | b |",
        TERMINAL_ATTACK,
    ],
)
def test_fence_holds_the_text_whole(text: str) -> None:
    opening, body, closing = fence(text)
    assert opening == closing + "text"
    assert set(closing) == {"`"} and len(closing) >= 3
    assert body == strip_controls(text)
    # No line inside can close it: a closing fence is a run at least as long.
    for line in body.split("\n"):
        run = re.match(r" {0,3}(`+)\s*$", line)
        assert not run or len(run.group(1)) < len(closing), line
    if MarkdownIt is not None:
        tokens = renderer().parse("\n".join([opening, body, closing]))
        assert [t.type for t in tokens] == ["fence"]
        assert tokens[0].content == body + "\n"


# note.render


def cause(label: str, evidence: str, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "fix": "resolve-start-container",
        "fix_title": "Start a stopped container",
        "fix_link": "docs/runbook.md#resolve-start-container",
        "evidence": evidence,
        "commands": [["read-only", "docker compose ps db"], ["mutating", "echo ```\nrm -rf /"]],
        "consequences": [
            {"label": "backend:http_health", "evidence": NGINX_502},
            {"label": "backend:logs_clean", "evidence": "*pool* exhausted | [x](http://evil)"},
            {"label": "backend`:`x", "evidence": "a\nb"},
            {"label": "backend:pg", "evidence": "x" * 500},
            {"label": "backend:none", "evidence": None},
        ],
        **extra,
    }


@pytest.fixture
def hostile_note(monkeypatch: pytest.MonkeyPatch) -> str:
    # Escalation has its own tests; here it is one fixed line.
    monkeypatch.setattr(note.escalation, "line", lambda incident, run: "Incident open for 5 min")
    # Text that reaches the note by no helper is stripped of controls all the same.
    monkeypatch.setattr(note, "POST_INCIDENT", (*note.POST_INCIDENT, f"Late {TERMINAL_ATTACK}\x00"))
    root = cause(
        "db|x:`container`\n# pwned",
        f"exited {TERMINAL_ATTACK}\n# Heading\n```\n*pool*",
        fix_title="Start a *stopped* [container](http://evil)",
    )
    tampered = cause("db:other", "e", fix_link="javascript:alert(1)")
    opened = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    incident = Incident(
        opened_at=opened,
        note="incident-x.md",
        runs=[
            {"at": opened.isoformat(), "status": "unhealthy", "partial": False, "root_causes": []},
            {
                "at": "2026-11-28T02:05:00+00:00 | forged",
                "status": "unhealthy\x1b[2J",
                "partial": True,
                "root_causes": [root, tampered],
            },
        ],
    )
    run = SimpleNamespace(stacks=[SimpleNamespace(stack=SimpleNamespace(name="testbed\n# x"))])
    return note.render(incident, cast(Run, run))


def blocks(text: str) -> tuple[list[str], list[str]]:
    """The note's lines outside fenced blocks, and its fences' opening lines."""
    outside: list[str] = []
    openings: list[str] = []
    closing = ""
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if closing:
            if re.fullmatch(rf"{closing}`*\s*", stripped):
                closing = ""
        elif match := re.match(r"(`{3,})", stripped):
            closing = match.group(1)
            openings.append(line)
        else:
            outside.append(line)
    return outside, openings


def test_render_keeps_the_notes_structure(hostile_note: str) -> None:
    outside, _ = blocks(hostile_note)
    headings = [line.split(" ", 1)[0] for line in outside if line.startswith("#")]
    assert headings == ["#", "##", "##", "###", "###", "##", "##", "##", "##"]
    assert [line for line in outside if line.startswith("## ")] == [
        "## Timeline",
        "## Root causes",
        "## Commands suggested",
        "## What was done",
        "## Root cause analysis",
        "## Post-incident checklist ([runbook](docs/runbook.md#post-incident))",
    ]
    assert hostile_note.startswith("# Incident: API Service Down (testbed ↵ # x)\n")


def test_render_writes_no_control_character(hostile_note: str) -> None:
    assert not CONTROL.findall(hostile_note.replace("\n", "").replace("\t", ""))
    assert "pwned\x07" not in hostile_note and "]0;" not in hostile_note
    assert "- [ ] Late cleared\n" in hostile_note


def test_render_keeps_every_table_row_in_three_columns(hostile_note: str) -> None:
    rows = [line for line in hostile_note.split("\n") if line.startswith("| 2026")]
    assert len(rows) == 2
    for row in rows:
        assert len(unescaped(row, "|")) == 4, row
    assert "| 2026-11-28T02:05:00+00:00 \\| forged | unhealthy (partial run) |" in rows[1]
    assert "``db\\|x:`container` ↵ # pwned``" in rows[1]


def test_render_quotes_evidence_and_labels(hostile_note: str) -> None:
    outside, openings = blocks(hostile_note)
    # The 502 page, the multi-line and the long evidence are fenced blocks
    # under their list items, the root cause's evidence one of its own.
    assert openings.count("  ```text") == 6  # three for each of the two root causes
    assert any(line.startswith("````") and line.endswith("text") for line in openings)
    assert not [line for line in outside if line.lstrip().startswith("<")]
    assert "- `backend:http_health`: `<html>`" in outside
    assert "- `backend:logs_clean`: `*pool* exhausted | [x](http://evil)`" in outside
    assert "- ``backend`:`x``: `a`" in outside
    assert f"- `backend:pg`: `{'x' * 159}…`" in outside
    assert "- `backend:none`: failed" in outside
    assert "### ``db|x:`container` ↵ # pwned``" in outside
    # A record's link that is not a runbook link is shown, not followed.
    assert "Runbook: Start a stopped container (`javascript:alert(1)`)" in outside
    assert (
        "Runbook: [Start a \\*stopped\\* \\[container\\](http://evil)]"
        "(docs/runbook.md#resolve-start-container)" in outside
    )


def test_render_keeps_each_command_and_its_comment_together(hostile_note: str) -> None:
    section = hostile_note.split("## Commands suggested\n", 1)[1].split("\n## ", 1)[0]
    lines = section.strip("\n").split("\n")
    assert lines[:2] == ["Nothing was run by stackcheck.", ""]
    opening, *body, closing = lines[2:]
    assert opening == "````bash" and closing == "````"
    assert body == [
        "docker compose ps db   # read-only, for db|x:`container` ↵ # pwned",
        "echo ```",
        "rm -rf /   # mutating, for db|x:`container` ↵ # pwned",
    ]  # the second root cause's commands are the same: listed once


@pytest.mark.skipif(MarkdownIt is None, reason="markdown-it-py is not installed")
def test_render_as_a_commonmark_renderer_sees_it(hostile_note: str) -> None:
    tokens = renderer().parse(hostile_note)
    flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
    types = {t.type for t in flat}
    assert not types & {"html_block", "html_inline", "strong_open", "image", "s_open"}
    # The only emphasis is the draft's own four italic lines.
    assert sum(t.type == "em_open" for t in flat) == 4
    links = [t.attrGet("href") for t in flat if t.type == "link_open"]
    assert links and all(str(href).startswith("docs/runbook.md#") for href in links)
    headings = [t.tag for t in tokens if t.type == "heading_open"]
    assert headings == ["h1", "h2", "h2", "h3", "h3", "h2", "h2", "h2", "h2"]
    rows = [t for t in tokens if t.type == "tr_open"]
    assert len(rows) == 3  # header and two runs
    cells = [t for t in tokens if t.type in ("td_open", "th_open")]
    assert len(cells) == 9
