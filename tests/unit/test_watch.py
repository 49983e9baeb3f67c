"""--watch: rounds until recovered, only the changes printed, one final report (fabricated facts).

The gathering plugin of these tests counts its calls (one per round) in a file
and answers from a script of scenarios: round N sees ``script[N-1]`` (the last
one once the script runs out), so a watch starts red and sees the fix mid-watch.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from reportbench import (
    DB_CONSEQUENCES,
    DB_FAILED,
    DB_STOPPED,
    TESTBED_ITEMS,
    TESTBED_SKIPPED,
    CheckRun,
)

from stackcheck.report.run import HEALTHY, UNHEALTHY, UNKNOWN
from stackcheck.watch import Delta, Snapshot, clock_line, delta, delta_lines, duration

pytest_plugins = ("pytester",)

BAD_LOGS = {"logs:backend": {"match_count": 1, "matches": ["ERROR: boom"]}}

SCRIPTED = '''
"""Round N of a watch sees scenario N of script.json (the last one after it runs out)."""
import json, os, signal
from pathlib import Path

import pytest

from factbench import fabricate


def _vmrss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.hookimpl(tryfirst=True)
def pytest_stackcheck_gather(stack, needs):
    here = Path(stack.path).parent
    script = json.loads((here / "script.json").read_text())
    rounds = here / "rounds.txt"
    number = len(rounds.read_text().splitlines()) + 1 if rounds.exists() else 1
    with rounds.open("a") as out:
        out.write(f"{number} {_vmrss_kib()}\\n")
    if number == script.get("interrupt_at"):
        os.kill(os.getpid(), getattr(signal, script.get("signal", "SIGINT")))
    scenarios = script["scenarios"]
    return fabricate(stack, needs, scenarios[min(number, len(scenarios)) - 1])
'''


def scripted(checkrun: CheckRun, scenarios: list[dict[str, Any]], **extra: Any) -> None:
    (checkrun.path / "scripted.py").write_text(SCRIPTED)
    (checkrun.path / "script.json").write_text(json.dumps({"scenarios": scenarios, **extra}))


def watch(checkrun: CheckRun, *args: str, subprocess: bool = False) -> pytest.RunResult:
    argv = ["scripted" if a == "fabricated" else a for a in checkrun.args()] + list(args)
    if subprocess:
        return checkrun.pytester.runpytest_subprocess(*argv)
    return checkrun.pytester.runpytest(*argv)


def rounds(checkrun: CheckRun) -> list[tuple[int, int]]:
    lines = (checkrun.path / "rounds.txt").read_text().splitlines()
    return [(int(a), int(b)) for a, b in (line.split() for line in lines)]


def round_blocks(result: pytest.RunResult) -> list[list[str]]:
    """Each round's heading and the lines under it, up to the next blank line."""
    lines = result.outlines
    blocks = []
    for i, line in enumerate(lines):
        if line.startswith("watch round "):
            block = [line]
            for rest in lines[i + 1 :]:
                if not rest.strip():
                    break
                block.append(rest)
            blocks.append(block)
    return blocks


# -- the round-to-round deltas (pure) ---------------------------------------


def snap(status: str, roots: tuple[str, ...] = (), **outcomes: str) -> Snapshot:
    return Snapshot(status, {k.replace("__", ":"): v for k, v in outcomes.items()}, roots)


def test_first_round_names_every_failure_and_the_root_cause() -> None:
    now = snap(UNHEALTHY, ("db:running",), db__running="failed", b__http="failed", b__cpu="passed")
    change = delta(None, now)
    assert change.failing == ["db:running", "b:http"]
    assert change.passing == []  # nothing "became" passing in the first round
    assert change.roots == ("db:running",)
    assert change.status == UNHEALTHY


def test_an_unchanged_round_says_only_that() -> None:
    before = snap(UNHEALTHY, ("db:running",), db__running="failed", b__http="failed")
    change = delta(before, before)
    assert not change.changed
    assert delta_lines(change, before) == ["  no change (2 failing, 0 could not check)"]


def test_newly_passing_newly_failing_and_a_new_root_cause() -> None:
    before = snap(
        UNHEALTHY, ("db:running",), db__running="failed", b__http="failed", b__mem="passed"
    )
    now = snap(UNHEALTHY, ("b:mem",), db__running="passed", b__http="failed", b__mem="failed")
    change = delta(before, now)
    assert change.failing == ["b:mem"]
    assert change.passing == ["db:running"]
    assert change.roots == ("b:mem",)
    assert change.status is None
    assert delta_lines(change, now) == [
        "  newly failing (1): b:mem",
        "  newly passing (1): db:running",
        "  root cause now: b:mem",
    ]


def test_blindness_is_its_own_change_and_its_end_is_newly_passing() -> None:
    before = snap(UNHEALTHY, ("db:running",), db__running="failed", b__http="passed")
    blind = snap(UNKNOWN, (), db__running="passed", b__http="error")
    change = delta(before, blind)
    assert change.blind == ["b:http"]
    assert change.passing == ["db:running"]
    assert change.roots == ()
    assert change.status == UNKNOWN
    assert "  no root cause" in delta_lines(change, blind)
    healed = delta(blind, snap(HEALTHY, (), db__running="passed", b__http="passed"))
    assert healed.passing == ["b:http"] and healed.blind == []


def test_a_skip_that_passes_is_not_news() -> None:
    before = snap(HEALTHY, (), a="skipped")
    assert delta(before, snap(HEALTHY, (), a="passed")).passing == []


def test_long_lists_are_cut_and_counted() -> None:
    many = {f"s{i}": "failed" for i in range(30)}
    lines = delta_lines(delta(None, Snapshot(UNHEALTHY, many, ())), Snapshot(UNHEALTHY, many, ()))
    assert lines[0].startswith("  newly failing (30): s0, s1") and lines[0].endswith("and 18 more")


def test_durations_read_as_a_person_would() -> None:
    assert [duration(s) for s in (0, 59, 61, 3599, 3661)] == [
        "0 s",
        "59 s",
        "1 min 01 s",
        "59 min 59 s",
        "1 h 01 min",
    ]
    assert clock_line("tb", None, None) == "  tb: no open incident"  # type: ignore[arg-type]


def test_delta_of_nothing_changed_is_falsy() -> None:
    assert not Delta([], [], [], None, None).changed


# -- the watch, in pytest, on fabricated facts ------------------------------


def test_watch_starts_red_sees_the_fix_and_ends_green(checkrun: CheckRun) -> None:
    scripted(checkrun, [DB_STOPPED, DB_STOPPED, {}])
    result = watch(checkrun, "--watch=0")
    assert result.ret == 0
    assert [n for n, _ in rounds(checkrun)] == [1, 2, 3]
    first, second, third = round_blocks(result)
    assert first[0].endswith(": unhealthy")
    assert first[1].startswith(f"  newly failing ({DB_FAILED}): ")
    named = first[1].split(": ", 1)[1].split(", ")
    assert set(named) == {"db:container_running", *DB_CONSEQUENCES}
    assert "  root cause now: db:container_running" in first
    assert any(
        re.match(r"  testbed: incident open \d+ s, escalates in 1[45] min", x) for x in first
    )
    assert second[1] == f"  no change ({DB_FAILED} failing, 0 could not check)"
    assert third[0].endswith(": healthy")
    assert third[1].startswith(f"  newly passing ({DB_FAILED}): ")
    assert "  no root cause" in third
    assert any(re.match(r"  testbed: incident closed; time to recover \d+ s", x) for x in third)
    assert re.search(
        r"watch: recovered after 3 rounds: testbed time to recover \d+ s", result.stdout.str()
    )
    # One run's output: the progress of the last round only, then the usual report.
    assert sum(1 for line in result.outlines if line.startswith("checks/test_container.py")) == 1
    result.assert_outcomes(passed=TESTBED_ITEMS - TESTBED_SKIPPED, skipped=TESTBED_SKIPPED)
    assert "testbed (compose project tb): healthy" in result.outlines
    assert any(x.startswith("Incident resolved after") for x in result.outlines)
    assert checkrun.summary()["status"] == "healthy"
    assert not (checkrun.reports / "incident-testbed.json").exists()
    note = next(checkrun.reports.glob("incident-testbed-*.md")).read_text()
    assert "db:container_running" in note


def test_reports_are_rewritten_every_round(checkrun: CheckRun) -> None:
    scripted(checkrun, [DB_STOPPED, DB_STOPPED, DB_STOPPED])
    result = watch(checkrun, "--watch=0", "--watch-max=0.01")
    assert result.ret == 1
    assert "watch: stopped at --watch-max after 1 rounds, not recovered" in result.stdout.str()
    clock = json.loads((checkrun.reports / "incident-testbed.json").read_text())
    assert len(clock["runs"]) == 1
    result = watch(checkrun, "--watch=0", "--watch-max=0.01")
    clock = json.loads((checkrun.reports / "incident-testbed.json").read_text())
    assert len(clock["runs"]) == 2  # one record per round, none for the final report


def test_watch_max_ends_an_unrecovered_watch_red(checkrun: CheckRun) -> None:
    scripted(checkrun, [DB_STOPPED])
    result = watch(checkrun, "--watch=0", "--watch-max=1")
    assert result.ret == 1
    count = len(rounds(checkrun))  # as many as fit in the second: depends on the machine
    assert count >= 1
    assert (
        f"watch: stopped at --watch-max after {count} rounds, not recovered: "
        "reporting the last round"
    ) in result.stdout.str()
    result.assert_outcomes(
        passed=TESTBED_ITEMS - TESTBED_SKIPPED - DB_FAILED,
        failed=DB_FAILED,
        skipped=TESTBED_SKIPPED,
    )
    assert checkrun.summary()["status"] == "unhealthy"


def test_ctrl_c_reports_the_last_complete_round(checkrun: CheckRun) -> None:
    # Round 3 is interrupted while it gathers; round 2 (still red) is the verdict.
    scripted(checkrun, [DB_STOPPED, DB_STOPPED, {}], interrupt_at=3)
    result = watch(checkrun, "--watch=0", subprocess=True)
    assert result.ret == 1, result.stdout.str()
    assert "watch: interrupted after 2 complete rounds: reporting the last complete round" in (
        result.stdout.str()
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(
        passed=TESTBED_ITEMS - TESTBED_SKIPPED - DB_FAILED,
        failed=DB_FAILED,
        skipped=TESTBED_SKIPPED,
    )


def test_sigterm_of_a_scheduler_ends_the_watch_like_ctrl_c(checkrun: CheckRun) -> None:
    scripted(checkrun, [DB_STOPPED, DB_STOPPED, {}], interrupt_at=3, signal="SIGTERM")
    result = watch(checkrun, "--watch=0", subprocess=True)
    assert result.ret == 1, result.stdout.str()
    assert "watch: terminated after 2 complete rounds" in result.stdout.str()
    assert checkrun.summary()["status"] == "unhealthy"


def test_ctrl_c_before_a_round_ends_is_pytests_interruption(checkrun: CheckRun) -> None:
    scripted(checkrun, [DB_STOPPED], interrupt_at=1)
    result = watch(checkrun, "--watch=0", subprocess=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--watch", "-n", "2"], "--watch runs in one process: drop -n/--dist"),
        (["--watch-max=5"], "--watch-max needs --watch"),
        (["--watch=soon"], "--watch wants seconds"),
        (["--watch=-1"], "--watch seconds must be 0 to 3600"),
        (["--watch", "--watch-max=nan"], "--watch-max must be a number of seconds"),
    ],
)
def test_watch_usage_errors_are_one_line(checkrun: CheckRun, args: list[str], error: str) -> None:
    scripted(checkrun, [{}])
    result = watch(checkrun, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_memory_stays_flat_over_200_rounds(checkrun: CheckRun) -> None:
    """200 rounds, red until the last: RSS after round 200 within 4 MiB of round 50 (measured: under 0.1 MiB)."""
    bound_kib = 4 * 1024
    # One failing check a round (a pytest traceback costs more than the watch itself).
    scripted(checkrun, [BAD_LOGS] * 199 + [{}])
    result = watch(checkrun, "--watch=0", subprocess=True)
    assert result.ret == 0
    seen = dict(rounds(checkrun))
    assert len(seen) == 200
    growth = seen[200] - seen[50]
    print(f"RSS round 50: {seen[50]} KiB, round 200: {seen[200]} KiB, growth {growth} KiB")
    assert growth < bound_kib
