"""An incident on the real testbed, watched to recovery, paged to a local webhook.

The database is stopped; ``pytest checks/ --watch`` starts red, pages "open"
and (with the escalation time set to seconds) "escalate"; the test then applies
the fix (recreates the db container, as the testbed's reset does) while the
watch runs; the watch ends green by itself, with the time to recover, a closed incident,
exit status 0 and one "resolve" page. Each page exactly once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackcheck.report.escalation import ESCALATE, OPEN, RESOLVE
from stackcheck.report.files import slug
from tests.checkrun import ROOT
from tests.webhook import SECRET, Receiver

# Bounds of the waits below (the test fails, never hangs); the watch's own bound.
RED_WAIT_S = 120.0
GREEN_WAIT_S = 300.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _wait(condition: object, timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            pytest.fail(f"the watch ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.5)


def test_watch_from_red_to_green_pages_once_each(
    testbed, fault, receiver: Receiver, tmp_path: Path
) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    # The watch's own probes may reach the database while it starts; its answer
    # to them is logged as FATAL, harmless (README: the incident walkthrough).
    with stack.open("a") as out:
        out.write('\n[logs]\nignore = ["the database system is starting up"]\n')
    fault("db-stopped")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "checks"),
        "--stack",
        str(stack),
        "-p",
        "no:cacheprovider",
        "--watch=1",
        f"--watch-max={GREEN_WAIT_S:.0f}",
        "--notify",
        receiver.url,
        "--escalate-after",
        "0.1",  # 6 s
    ]
    output: list[str] = []
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ,
    )
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        # Red, and paged twice: opened, then past the (short) escalation time.
        _wait(lambda: ESCALATE in receiver.events(), RED_WAIT_S, "escalate page", proc)
        assert receiver.events() == [OPEN, ESCALATE]
        clock = tmp_path / "reports" / f"incident-{slug(testbed.project)}.json"
        assert clock.exists()  # written by the rounds so far, not at the end
        # The fix, applied while the watch runs (a fresh container, as the testbed's
        # reset makes it); the watch itself waits for the database to come back.
        testbed.compose("up", "-d", "--no-deps", "--force-recreate", "-t", "1", "db")
        proc.wait(timeout=GREEN_WAIT_S + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    text = "".join(output)
    assert proc.returncode == 0, text[-3000:]
    first = text.split("watch round 1 at ", 1)[1].split("\n\n", 1)[0]
    assert first.splitlines()[0].endswith("UTC: unhealthy")
    assert "  root cause now: db:container_running" in first
    assert re.search(r"\n  newly passing \(\d+\): .*db:container_running", text)
    assert re.search(
        rf"watch: recovered after \d+ rounds: {re.escape(testbed.project)} time to recover "
        r"(\d+ min )?\d+ s, incident closed",
        text,
    )
    assert f"{testbed.project} (compose project {testbed.project}): healthy" in text
    assert "Incident resolved after" in text
    assert not clock.exists()
    assert receiver.events() == [OPEN, ESCALATE, RESOLVE]
    assert "db:container_running" in receiver.posts[0]["text"]
    reports = [p.read_text() for p in (tmp_path / "reports").iterdir() if p.is_file()]
    assert not any(SECRET in found for found in [text, *reports])
