"""Paging (--notify, [notify]): the webhook messages, once per incident, bounded, secret.

Real HTTP: a receiver on loopback records what it is sent, or answers 500, or
never answers. Facts are fabricated (reportbench's ``checkrun``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from reportbench import DB_CONSEQUENCES, DB_STOPPED, TESTBED, CheckRun, stack_toml

from stackcheck.config import Stack, StackFileError, load_stack
from stackcheck.report import notify
from stackcheck.report.escalation import ESCALATE, OPEN, RESOLVE, Incident
from tests.webhook import SECRET, Receiver

pytest_plugins = ("pytester",)

CLOCK = "incident-testbed.json"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def age(checkrun: CheckRun, minutes: float) -> None:
    path = checkrun.reports / CLOCK
    data = json.loads(path.read_text())
    opened = datetime.fromisoformat(data["opened_at"]) - timedelta(minutes=minutes)
    data["opened_at"] = opened.isoformat()
    path.write_text(json.dumps(data))


def everything_written(checkrun: CheckRun, result: pytest.RunResult) -> str:
    files = [p for p in checkrun.reports.rglob("*") if p.is_file()]
    return "\n".join([result.stdout.str(), result.stderr.str(), *(p.read_text() for p in files)])


# -- the messages (pure) ------------------------------------------------------


def stack(**notify_keys: Any) -> Stack:
    from stackcheck.config import Notify

    return Stack(Path("tb.toml"), "testbed", "tb", {}, notify=Notify(**notify_keys))


ROOT = {
    "label": "db:container_running",
    "fix": "resolve-start-container",
    "fix_title": "Start a stopped container",
    "fix_link": "docs/runbook.md#resolve-start-container",
    "evidence": "container tb-db-1 is exited (exit code 0)\nmore",
    "commands": [
        ["read-only", "docker compose -p tb ps db"],
        ["mutating", "docker compose -p tb up -d db"],
    ],
    "consequences": [{"label": c, "evidence": None} for c in DB_CONSEQUENCES],
}


def incident(minutes: float = 3, roots: list[dict[str, Any]] | None = None) -> Incident:
    opened = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)
    record = {"at": opened.isoformat(), "status": "unhealthy", "partial": False}
    found = Incident(opened, "reports/incident-testbed-20261129T010000Z.md")
    found.runs = [{**record, "root_causes": [ROOT] if roots is None else roots}]
    found.escalate_after = timedelta(minutes=minutes)
    return found


NOW = datetime(2026, 11, 29, 1, 4, 30, tzinfo=UTC)


def test_open_names_the_root_cause_its_first_fix_and_the_runbook_step() -> None:
    text = notify.message(OPEN, stack(), incident(), NOW)["text"]
    lines = text.splitlines()
    assert lines[0] == (":red_circle: *Incident opened* on stack `testbed` (compose project `tb`)")
    assert lines[1] == "First failing run 2026-11-29 01:00:00 UTC."
    assert lines[2] == "Root causes (1):"
    assert lines[3] == (
        "• *db:container_running*: container tb-db-1 is exited (exit code 0) "
        f"({len(DB_CONSEQUENCES)} consequences)"
    )
    assert lines[4] == "    fix: `docker compose -p tb up -d db`"  # the first that fixes
    assert lines[5] == (
        "    runbook: Start a stopped container: docs/runbook.md#resolve-start-container"
    )


def test_escalate_says_how_long_and_whom_to_page() -> None:
    text = notify.message(ESCALATE, stack(), incident(minutes=3), NOW)["text"]
    assert text.splitlines()[1].startswith(
        "Open for 4 min 30 s, unresolved past 3 min: page the team lead"
    )
    assert "fix: `docker compose -p tb up -d db`" in text


def test_resolve_says_the_time_to_recover_and_the_note_and_no_fix() -> None:
    found = incident()
    found.closed_at = NOW
    text = notify.message(RESOLVE, stack(), found, NOW)["text"]
    assert text.splitlines()[1] == (
        "Resolved after 4 min 30 s (1 runs); complete the incident note "
        "`incident-testbed-20261129T010000Z.md` (docs/runbook.md#post-incident)."
    )
    assert "Root causes were (1):" in text
    assert "fix:" not in text  # nothing to fix any more


def test_mrkdwn_controls_and_terminal_escapes_are_neutralised() -> None:
    hostile = {**ROOT, "label": "<!channel> & <http://x|y>", "evidence": "\x1b[31mred\x07"}
    text = notify.message(OPEN, stack(), incident(roots=[hostile]), NOW)["text"]
    assert "<" not in text and ">" not in text.replace("->", "")
    assert "&lt;!channel&gt; &amp; &lt;http://x|y&gt;" in text
    assert "\x1b" not in text and "\x07" not in text


def test_a_message_is_bounded() -> None:
    roots = [{**ROOT, "label": f"s{i}:check", "evidence": "x" * 5000} for i in range(40)]
    text = notify.message(OPEN, stack(), incident(roots=roots), NOW)["text"]
    assert len(text) <= notify.MAX_TEXT
    assert text.count("• *") <= notify.MAX_ROOTS


def test_first_fix_prefers_a_command_that_changes_something() -> None:
    assert notify.first_fix([["read-only", "a"], ["mutating", "b"]]) == "b"
    assert notify.first_fix([["read-only", "a"]]) == "a"
    assert notify.first_fix([]) is None


def test_masked_keeps_scheme_and_host_only() -> None:
    url = f"https://user:pw@hooks.example.com:8443/services/{SECRET}?token=x"
    assert notify.masked(url, 2) == "webhook #2 (https://hooks.example.com:8443)"


# -- the stack file -------------------------------------------------------------


def write_stack(tmp_path: Path, notify_table: str) -> Path:
    path = tmp_path / "tb.toml"
    path.write_text(stack_toml(TESTBED) + notify_table)
    return path


def test_stack_file_notify_table(tmp_path: Path) -> None:
    url = f"https://hooks.example.com/services/{SECRET}"
    found = load_stack(
        write_stack(tmp_path, f'[notify]\nurls = ["{url}"]\nescalate_after_min = 5\n')
    )
    assert found.notify.urls == (url,)
    assert found.notify.escalate_after_min == 5.0
    assert load_stack(write_stack(tmp_path, "")).notify.escalate_after_min == 15.0


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (f'urls = ["ftp://h/{SECRET}"]', "'notify.urls' entry 1 is not an http(s) URL"),
        (f'urls = ["https://h/{SECRET} x"]', "entry 1 contains spaces or control characters"),
        (f'urls = ["https://h/{SECRET}", "https://h/{SECRET}"]', "lists a URL twice"),
        ("escalate_after_min = 0", "'notify.escalate_after_min' must be greater than 0"),
        ("escalate_after_min = 5000", "'notify.escalate_after_min' must be at most 1440"),
        ("page = true", "unknown key 'notify.page'"),
    ],
)
def test_stack_file_notify_errors_never_quote_the_url(
    tmp_path: Path, table: str, error: str
) -> None:
    with pytest.raises(StackFileError) as caught:
        load_stack(write_stack(tmp_path, f"[notify]\n{table}\n"))
    assert error in str(caught.value)
    assert "secret" not in str(caught.value)


# -- pages from real runs, to a real receiver ------------------------------------


def test_open_escalate_resolve_once_each_per_incident(
    checkrun: CheckRun, receiver: Receiver
) -> None:
    checkrun.scenario(DB_STOPPED)
    args = ("--notify", receiver.url, "--escalate-after", "10")
    first = checkrun.run(*args)
    assert first.ret == 1
    assert receiver.events() == [OPEN]
    assert "db:container_running" in receiver.posts[0]["text"]
    assert "up -d db" in receiver.posts[0]["text"]
    assert receiver.paths == [f"/services/{SECRET}"]
    # In the summary, or on stderr when it came after the summary.
    assert any(
        "notify: page 'open' for testbed to webhook #1 (http://127.0.0.1:" in line
        and line.endswith("delivered (HTTP 200)")
        for line in first.outlines + first.errlines
    )
    assert checkrun.run(*args).ret == 1
    assert receiver.events() == [OPEN]  # still open, not yet past 10 min: nothing new
    age(checkrun, 11)
    escalated = checkrun.run(*args)
    assert receiver.events() == [OPEN, ESCALATE]
    assert "unresolved past 10 min" in receiver.posts[1]["text"]
    assert any(line.startswith("ESCALATE: incident open for 11 min") for line in escalated.outlines)
    checkrun.run(*args)
    assert receiver.events() == [OPEN, ESCALATE]
    checkrun.scenario({})
    assert checkrun.run(*args).ret == 0
    assert receiver.events() == [OPEN, ESCALATE, RESOLVE]
    assert "Resolved after 11 min" in receiver.posts[2]["text"]
    last = checkrun.run(*args)
    assert receiver.events() == [OPEN, ESCALATE, RESOLVE]
    assert SECRET not in everything_written(checkrun, last)
    assert SECRET not in everything_written(checkrun, escalated)


def test_stack_file_urls_page_too(checkrun: CheckRun, receiver: Receiver) -> None:
    spec = {**TESTBED}
    checkrun.scenario(DB_STOPPED, stacks=[spec])
    path = checkrun.path / "testbed.toml"
    path.write_text(path.read_text() + f'[notify]\nurls = ["{receiver.url}"]\n')
    assert checkrun.run().ret == 1
    assert receiver.events() == [OPEN]
    assert json.loads((checkrun.reports / CLOCK).read_text())["notified"] == [OPEN]


def test_a_receiver_answering_500_never_fails_the_run(checkrun: CheckRun) -> None:
    failing = Receiver("fail")
    try:
        checkrun.scenario({})
        healthy = checkrun.run("--notify", failing.url)
        assert healthy.ret == 0 and failing.posts == []  # no incident, no page
        checkrun.scenario(DB_STOPPED)
        result = checkrun.run("--notify", failing.url)
        assert result.ret == 1  # unhealthy, as without paging
        assert failing.events() == [OPEN]
        assert any(
            line.endswith("refused (HTTP 500)") for line in result.outlines + result.errlines
        )
        # Sent once: a refused page is not repeated by the next run.
        checkrun.run("--notify", failing.url)
        assert failing.events() == [OPEN]
        assert SECRET not in everything_written(checkrun, result)
    finally:
        failing.close()


def test_a_hanging_receiver_is_bounded_and_never_fails_the_run(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "READ_S", 0.5)
    monkeypatch.setattr(notify, "WAIT_S", 3.0)
    hanging = Receiver("hang")
    try:
        checkrun.scenario(DB_STOPPED)
        result = checkrun.run("--notify", hanging.url)
        assert result.ret == 1
        assert hanging.events() == [OPEN]
        text = result.stdout.str() + result.stderr.str()
        assert "no answer within 0.5 s" in text
        assert SECRET not in everything_written(checkrun, result)
    finally:
        hanging.close()


def test_an_unreachable_receiver_says_so_without_the_url(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    gone = f"http://127.0.0.1:9/{SECRET}"  # discard: nothing listens
    result = checkrun.run("--notify", gone)
    assert result.ret == 1
    text = result.stdout.str() + result.stderr.str()
    assert "not delivered (ConnectionError)" in text
    assert SECRET not in everything_written(checkrun, result)


def test_a_bad_notify_url_is_one_usage_line_without_the_url(checkrun: CheckRun) -> None:
    result = checkrun.run("--notify", f"gopher://h/{SECRET}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--notify URL number 1 is not an http(s) URL" in result.stderr.str()
    assert SECRET not in result.stderr.str() + result.stdout.str()
