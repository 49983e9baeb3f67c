"""The incident clock file is data, not instructions (issue 9, item 3).

It names no place to write (the note always goes beside it, whatever the file
says), its shape is checked whole (anything unusable starts a new incident with
one line in the terminal's reports lines, never a traceback or a negative age),
it stays small however long the incident (the first run and the latest are
kept, the rest counted), and concurrent runs lose nothing: ten real processes
advance one clock 200 times each under the real fcntl lock, while another
process reads it, and every run is counted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import factbench
import pytest
from definitions import definitions
from reportbench import DB_FAILED, DB_STOPPED, TESTBED, CheckRun, stack_toml

from stackcheck import payload as payloads
from stackcheck.config import Stack, load_stack
from stackcheck.model import CheckRef
from stackcheck.probes.gather import Need
from stackcheck.report import escalation, note, registry
from stackcheck.report.escalation import (
    CLOCK_READ_MAX,
    CLOCK_TARGET,
    EVIDENCE_KEEP,
    KEEP_RUNS,
    Unusable,
)
from stackcheck.report.files import WriteFailed
from stackcheck.report.results import CheckResult
from stackcheck.report.run import HEALTHY, UNHEALTHY, Run, build
from stackcheck.where import needs_of, refs

pytest_plugins = ("pytester",)

CLOCK = "incident-testbed.json"
CHECKS = definitions()
T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)


# -- Real runs, without pytest: the real checks' payloads, hints and causes ----------


def load_testbed_stack(directory: Path) -> Stack:
    path = directory / "testbed.toml"
    path.write_text(stack_toml(TESTBED))
    return load_stack(path)


def real_run(
    stack: Stack,
    failing: dict[str, str],
    started_at: datetime = T0,
    finished_at: datetime | None = None,
) -> Run:
    """A run of every check of ``stack`` on healthy facts; ``failing``: key -> evidence.

    Payloads, hints and the causal analysis are the real ones, as the reporter
    builds them from the reports pytest hands it.
    """
    registry.remember([stack])
    needs = {n for c in CHECKS.values() for r in refs(stack, c) for n in needs_of(r, c)}
    needs |= {Need("container", s) for s in stack.services}
    facts = factbench.fabricate(stack, frozenset(needs), {})
    results = []
    for check in CHECKS.values():
        for ref in refs(stack, check):
            evidence = failing.get(ref.key)
            outcome = "passed" if evidence is None else "failed"
            fix = check.fixes[0] if evidence is not None else None
            built = payloads.build(ref, check, stack, facts, outcome, evidence, fix, [])
            nodeid = f"checks/test_x.py::test_{check.name}[{ref.key}]"
            report = pytest.TestReport(nodeid, ("x", 0, "x"), {}, outcome, evidence, "call")
            results.append(
                CheckResult(
                    ref=CheckRef(ref.stack, ref.check, ref.service, ref.target),
                    check=check,
                    nodeid=nodeid,
                    outcome=outcome,
                    evidence=evidence,
                    duration_s=0.1,
                    payload=built,
                    report=report,
                )
            )
    return build(results, [stack], started_at, finished_at or started_at, False)


DB_DOWN = {
    "db:container_running": "db is exited (exit code 0)",
    "db:pg_ready": "no response",
    "backend:http_health": "HTTP 503",
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    found = load_testbed_stack(tmp_path)
    yield found
    registry.remember([])


def test_the_real_run_helper_builds_what_the_reporter_builds(stack: Stack) -> None:
    run = real_run(stack, DB_DOWN)
    assert run.status == UNHEALTHY
    assert [r.label for r in run.roots] == ["db:container_running"]
    assert {r.label for r in run.consequences(run.roots[0])} == {
        "db:pg_ready",
        "backend:http_health",
    }
    assert real_run(stack, {}).status == HEALTHY


# -- The note's place ---------------------------------------------------------------


def clock_doc(opened: datetime | str, runs: Any = None, **extra: Any) -> dict[str, Any]:
    at = opened if isinstance(opened, str) else opened.isoformat()
    if runs is None:
        runs = [{"at": at, "status": "unhealthy", "partial": False, "root_causes": []}]
    return {"opened_at": at, "runs": runs, **extra}


@pytest.mark.parametrize(
    "claimed",
    [
        "{elsewhere}/X.md",
        "../x.md",
        "../../incident-testbed-20261128T020000Z.md",
        "incident-other-20261128T020000Z.md",  # another stack's note, beside it
        "incident-testbed.json",  # the clock itself
        "incident-testbed-20261128T020000Z.md/../../x.md",
        "/tmp/incident-testbed-20261128T020000Z.md",  # its own pattern, elsewhere
    ],
)
def test_the_note_goes_beside_the_clock_whatever_the_file_says(
    checkrun: CheckRun, claimed: str
) -> None:
    elsewhere = checkrun.path / "elsewhere"
    elsewhere.mkdir()
    checkrun.reports.mkdir()
    opened = datetime.now(UTC) - timedelta(minutes=3)
    doc = clock_doc(opened, note=claimed.format(elsewhere=elsewhere))
    (checkrun.reports / CLOCK).write_text(json.dumps(doc))
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    assert result.ret == 1

    expected = f"incident-testbed-{opened:%Y%m%dT%H%M%SZ}.md"
    assert checkrun.summary()["stacks"][0]["incident"]["note"] == str(checkrun.reports / expected)
    names = sorted(p.name for p in checkrun.reports.iterdir())
    assert names == sorted(
        [
            CLOCK,
            f"{CLOCK}.lock",
            expected,
            "summary-testbed.json",
            "stackcheck-testbed.prom",
            ".stackcheck-key",
        ]
    )
    assert not list(elsewhere.iterdir())
    assert not (checkrun.path / "x.md").exists() and not (checkrun.path.parent / "x.md").exists()
    assert not list(checkrun.path.glob("*.md"))
    # The clock stays a clock, naming its note by a bare name of its own.
    data = json.loads((checkrun.reports / CLOCK).read_text())
    assert data["note"] == expected and len(data["runs"]) == 2
    assert "reports: " + "incident clock" not in result.stdout.str()


# -- Unusable clocks: a new incident, one line, no traceback ---------------------------

NOW = datetime.now(UTC)
RECORD = {"at": NOW.isoformat(), "status": "unhealthy", "partial": False, "root_causes": []}
BAD_CAUSE = {"label": "db:x", "commands": [["read-only"]], "consequences": []}

UNUSABLE: dict[str, tuple[Callable[[Path], None], str]] = {
    "not JSON": (lambda p: p.write_text("{not json"), "not valid JSON"),
    "empty": (lambda p: p.write_text(""), "not valid JSON"),
    "a list": (lambda p: p.write_text("[1, 2]"), "not a JSON object"),
    "nested deep": (lambda p: p.write_text("[" * 100_000), "not valid JSON"),
    "no zone": (
        lambda p: p.write_text(json.dumps(clock_doc("2026-11-28T02:00:00"))),
        "opened_at has no time zone",
    ),
    "opened_at a number": (
        lambda p: p.write_text(json.dumps(clock_doc(NOW, opened_at=1))),
        "opened_at is not an ISO 8601 time",
    ),
    "opened_at missing": (
        lambda p: p.write_text(json.dumps({"runs": [RECORD]})),
        "opened_at is not an ISO 8601 time",
    ),
    "from the future": (
        lambda p: p.write_text(json.dumps(clock_doc(NOW + timedelta(days=1129)))),
        "is in the future",
    ),
    "out of range": (
        lambda p: p.write_text(json.dumps(clock_doc("0001-01-01T00:00:00+14:00"))),
        "opened_at is out of range",
    ),
    "runs [1]": (lambda p: p.write_text(json.dumps(clock_doc(NOW, [1]))), "runs is not"),
    "runs [{}]": (lambda p: p.write_text(json.dumps(clock_doc(NOW, [{}]))), "runs is not"),
    "runs 'x'": (lambda p: p.write_text(json.dumps(clock_doc(NOW, "x"))), "runs is not"),
    "runs []": (lambda p: p.write_text(json.dumps(clock_doc(NOW, []))), "runs is not"),
    "root_causes wrong": (
        lambda p: p.write_text(
            json.dumps(clock_doc(NOW, [{**RECORD, "root_causes": [BAD_CAUSE]}]))
        ),
        "runs is not",
    ),
    "omitted negative": (
        lambda p: p.write_text(json.dumps(clock_doc(NOW, omitted=-5))),
        "omitted is not a count",
    ),
    "huge": (
        lambda p: p.write_text(json.dumps(clock_doc(NOW, pad="x" * (CLOCK_READ_MAX + 1)))),
        f"larger than {CLOCK_READ_MAX // 2**20} MiB",
    ),
    "a link": (lambda p: p.symlink_to(p.parent / "elsewhere.json"), "cannot open it"),
    "a FIFO": (lambda p: os.mkfifo(p), "not a regular file"),
    "not UTF-8": (lambda p: p.write_bytes(b'{"opened_at": "\xff"}'), "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_an_unusable_clock_starts_a_new_incident_with_one_line(
    checkrun: CheckRun, case: str
) -> None:
    make, reason = UNUSABLE[case]
    checkrun.reports.mkdir()
    outside = checkrun.reports / "elsewhere.json"  # a link's target: a clock of its own
    outside.write_text(json.dumps(clock_doc(NOW - timedelta(hours=2))))
    make(checkrun.reports / CLOCK)
    checkrun.scenario(DB_STOPPED)
    # In a subprocess with a timeout: a FIFO that made the reader wait would hang
    # the run (the timeout only stops a hang; nothing here is timed).
    if case == "a FIFO":
        result = checkrun.pytester.runpytest_subprocess(*checkrun.args(), timeout=300)
    else:
        result = checkrun.run()
    out = result.stdout.str() + result.stderr.str()

    assert result.ret == 1  # the verdict is the stack's, as without a clock
    assert "Traceback" not in out and "INTERNALERROR" not in out
    warnings = [line for line in result.stdout.lines if "incident clock" in line]
    assert len(warnings) == 1, out
    clock = re.escape(str(checkrun.reports / CLOCK))
    assert re.fullmatch(
        rf"reports: incident clock {clock} was unusable \(.*{re.escape(reason)}.*\): "
        "started a new incident",
        warnings[0],
    ), warnings
    assert re.search(r"^Incident open for 0 min \(first failing run .*, 1 run\);", out, re.M), out
    assert " -" not in escalation_line(out)  # never "open for -1625973 min"
    assert "Remediation" in out and "ROOT CAUSE db:container_running" in out
    assert f"consequences ({DB_FAILED - 1})" in out

    # A new clock, of this run; the link's target was neither read nor written.
    data = json.loads((checkrun.reports / CLOCK).read_text())
    assert data["opened_at"] == checkrun.summary()["started_at"]
    assert len(data["runs"]) == 1
    assert not (checkrun.reports / CLOCK).is_symlink()
    assert json.loads(outside.read_text()) == clock_doc(NOW - timedelta(hours=2))
    # ...and the next run goes on with it, without a warning.
    again = checkrun.run()
    assert "incident clock" not in again.stdout.str()
    assert re.search(r"^Incident open for 0 min \(.*, 2 runs\);", again.stdout.str(), re.M)


def escalation_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(("Incident", "ESCALATE")))


def test_a_directory_in_place_of_the_clock_costs_the_clock_not_the_report(
    checkrun: CheckRun,
) -> None:
    (checkrun.reports / CLOCK).mkdir(parents=True)
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1
    assert "Traceback" not in out and "INTERNALERROR" not in out
    problems = [
        line for line in result.stdout.lines if line.startswith("reports: ") and ":" in line[9:]
    ]
    assert problems == [
        f"reports: cannot write {checkrun.reports / CLOCK}: Is a directory; "
        "the incident clock of testbed was not moved"
    ]
    assert "Incident clock unknown" in out and "No open incident" not in out
    assert "ROOT CAUSE db:container_running" in out
    # The other outputs are written all the same.
    assert checkrun.summary()["status"] == "unhealthy"
    assert (checkrun.reports / "stackcheck-testbed.prom").is_file()


def test_a_link_in_place_of_the_lock_creates_nothing_where_it_points(checkrun: CheckRun) -> None:
    checkrun.reports.mkdir()
    target = checkrun.path / "created-through-the-link"
    (checkrun.reports / f"{CLOCK}.lock").symlink_to(target)
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    assert result.ret == 1
    assert not target.exists()
    assert [line for line in result.stdout.lines if line.startswith("reports: cannot")] == [
        f"reports: cannot lock {checkrun.reports / CLOCK}.lock: Too many levels of symbolic "
        "links; the incident clock of testbed was not moved"
    ]
    assert "ROOT CAUSE db:container_running" in result.stdout.str()


def test_a_healthy_run_leaves_an_unusable_clock_and_says_so(checkrun: CheckRun) -> None:
    checkrun.reports.mkdir()
    (checkrun.reports / CLOCK).write_text("{not json")
    result = checkrun.run()
    assert result.ret == 0
    assert [line for line in result.stdout.lines if "incident clock" in line] == [
        f"reports: incident clock {checkrun.reports / CLOCK} was unusable (not valid JSON): "
        "left as it is; the next failing run starts a new incident"
    ]
    assert (checkrun.reports / CLOCK).read_text() == "{not json"
    assert "No open incident." in result.stdout.str()


def test_a_note_name_of_its_own_is_kept_beside_the_clock(tmp_path: Path) -> None:
    path = tmp_path / CLOCK
    opened = NOW - timedelta(minutes=5)
    path.write_text(json.dumps(clock_doc(opened, note="incident-testbed-20200101T000000Z.md")))
    found = escalation.load(path, NOW)
    assert found is not None
    assert found.note == str(tmp_path / "incident-testbed-20200101T000000Z.md")


def test_load_reports_why_and_a_missing_file_is_no_incident(tmp_path: Path) -> None:
    path = tmp_path / CLOCK
    assert escalation.load(path, NOW) is None
    path.write_text(json.dumps(clock_doc(NOW + timedelta(minutes=2))))
    with pytest.raises(Unusable, match="in the future"):
        escalation.load(path, NOW)
    # Within the allowed skew a clock ahead of this host's is still the clock.
    path.write_text(json.dumps(clock_doc(NOW + timedelta(seconds=30))))
    found = escalation.load(path, NOW)
    assert found is not None and found.note == str(
        tmp_path / f"{path.stem}-{found.opened_at:%Y%m%dT%H%M%SZ}.md"
    )


# -- A long incident stays cheap ----------------------------------------------------


def test_a_long_incident_keeps_the_first_and_the_latest_runs(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / CLOCK
    total = KEEP_RUNS + 50
    incident = None
    for i in range(total):
        at = T0 + timedelta(seconds=i)
        incident = escalation.advance(path, real_run(stack, DB_DOWN, at, at))
    assert incident is not None and incident.run_count == total

    data = json.loads(path.read_text())
    assert len(data["runs"]) == KEEP_RUNS and data["omitted"] == total - KEEP_RUNS
    kept = [datetime.fromisoformat(r["at"]) for r in data["runs"]]
    assert kept[0] == T0  # the incident's first run
    assert kept[1:] == [T0 + timedelta(seconds=i) for i in range(total - KEEP_RUNS + 1, total)]
    assert data["opened_at"] == T0.isoformat()

    last = T0 + timedelta(seconds=total - 1)
    run = real_run(stack, DB_DOWN, last, last)
    loaded = escalation.load(path, last)
    assert loaded is not None and loaded.run_count == total
    assert f"{total} runs" in escalation.line(loaded, run)
    text = note.render(loaded, run)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == KEEP_RUNS + 1
    assert rows[0].startswith(f"| {T0.isoformat()} | unhealthy |")
    assert rows[1] == f"| … | {total - KEEP_RUNS} more runs, not kept | … |"
    assert rows[2].startswith(f"| {(T0 + timedelta(seconds=total - KEEP_RUNS + 1)).isoformat()}")


def test_large_records_keep_the_file_under_its_target(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / CLOCK
    long = {key: f"{key} " + "e" * 50_000 for key in DB_DOWN}
    for i in range(40):
        at = T0 + timedelta(seconds=i)
        incident = escalation.advance(path, real_run(stack, long, at, at))
        assert path.stat().st_size <= CLOCK_TARGET
    assert incident is not None and incident.run_count == 40
    loaded = escalation.load(path, T0 + timedelta(seconds=40))
    assert loaded is not None and loaded.run_count == 40
    assert loaded.runs[0]["at"] == T0.isoformat()
    assert loaded.runs[-1]["at"] == (T0 + timedelta(seconds=39)).isoformat()
    (cause,) = loaded.runs[-1]["root_causes"]
    assert cause["evidence"].startswith("db:container_running eee")
    assert cause["evidence"].endswith(f"… [cut: {50_021 - EVIDENCE_KEEP} more characters]")
    assert all(len(c["evidence"]) < EVIDENCE_KEEP + 40 for c in cause["consequences"])


def test_a_healthy_run_closes_and_removes_the_clock(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / CLOCK
    escalation.advance(path, real_run(stack, DB_DOWN))
    later = T0 + timedelta(minutes=20)
    closed = escalation.advance(path, real_run(stack, {}, later, later))
    assert closed is not None and closed.closed_at == later and closed.run_count == 2
    assert not path.exists()


# -- Ten processes, one clock ---------------------------------------------------------

PROCESSES = 10
ADVANCES = 200


def _advance_many(directory: str, worker: int, results: Any) -> None:
    """One process: ADVANCES runs of its own, each a real unhealthy run."""
    own = Path(directory) / f"stack-{worker}"
    own.mkdir()
    stack = load_testbed_stack(own)
    base = real_run(stack, {"db:container_running": "db is exited"})
    path = Path(directory) / CLOCK
    recorded = failed = 0
    problems: list[str] = []
    for i in range(ADVANCES):
        # Distinct start times, all within a second of T0; finished later than
        # any start, so no process's clock looks like it came from the future.
        at = T0 + timedelta(microseconds=worker * 1000 + i)
        run = replace(base, started_at=at, finished_at=T0 + timedelta(seconds=5))
        try:
            found = escalation.advance(path, run, warn=problems.append)
        except WriteFailed as exc:  # reported, as the reporter would
            failed += 1
            problems.append(str(exc))
        else:
            recorded += found is not None
    results.put((worker, recorded, failed, problems))


def _read_until(directory: str, stop: Any, results: Any) -> None:
    """Another process: read the clock as fast as it can while the others write it."""
    path = Path(directory) / CLOCK
    reads = 0
    bad: list[str] = []
    while True:
        last = stop.is_set()  # one more read once the writers are done, at least
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if last:
                break
            continue
        try:
            json.loads(data)
            if escalation.load(path, T0 + timedelta(seconds=5)) is None:
                bad.append("load found no incident")
        except (ValueError, Unusable) as exc:
            bad.append(f"{type(exc).__name__}: {exc} ({len(data)} bytes)")
        reads += 1
        if last:
            break
        time.sleep(0.002)  # leave the writers the CPU: the host may have two
    results.put(("reader", reads, bad))


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory (tmpfs) where there is one, else ``tmp_path``.

    2,000 fsyncs on a busy shared disk take minutes; what is under test here is
    the lock and the atomic rename, which tmpfs has exactly as a disk does.
    """
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    found = Path(tempfile.mkdtemp(prefix="stackcheck-clock-", dir=shm))
    try:
        yield found
    finally:
        shutil.rmtree(found, ignore_errors=True)


def test_ten_processes_advancing_one_clock_lose_no_run(memory_dir: Path) -> None:
    tmp_path = memory_dir
    # fork: each child starts with this module loaded (a fresh interpreter per
    # child would spend longer importing than advancing); what they share is the
    # clock file alone, as separate runs do.
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    stop = ctx.Event()
    here = str(tmp_path)
    reader = ctx.Process(target=_read_until, args=(here, stop, results))
    reader.start()
    workers = [ctx.Process(target=_advance_many, args=(here, n, results)) for n in range(PROCESSES)]
    for worker in workers:
        worker.start()
    done = [results.get(timeout=600) for _ in workers]  # the timeout stops a hang only
    for worker in workers:
        worker.join()
    stop.set()
    _, reads, bad = results.get(timeout=600)
    reader.join()

    assert [w.exitcode for w in workers] == [0] * PROCESSES
    recorded = sum(r for _, r, _, _ in done)
    failed = sum(f for _, _, f, _ in done)
    problems = [p for _, _, _, ps in done for p in ps]
    # Every advance either recorded its run or said, in one line, that it could
    # not: the lock's wait is bounded (5 s), and a host loaded enough may make a
    # run give up; such a run is reported, never lost silently. (On a quiet host
    # none gives up: the waiters are woken by the kernel as the lock is freed.)
    assert recorded + failed == PROCESSES * ADVANCES
    assert len(problems) == failed, problems[:5]
    assert all("stayed locked by another run for 5 s" in p for p in problems), problems[:5]

    data = json.loads((tmp_path / CLOCK).read_text())
    assert len(data["runs"]) + data["omitted"] == recorded, (recorded, failed)
    assert len(data["runs"]) == KEEP_RUNS
    # Each process's kept runs are its latest, in its order: none overwrote another's.
    ats = [datetime.fromisoformat(r["at"]) for r in data["runs"]]
    assert len(set(ats)) == len(ats)
    for worker in range(PROCESSES):
        mine = [a for a in ats[1:] if (a - T0).microseconds // 1000 == worker]
        assert mine == sorted(mine)
    loaded = escalation.load(tmp_path / CLOCK, T0 + timedelta(seconds=5))
    assert loaded is not None and loaded.run_count == recorded

    assert reads > 0 and bad == [], bad[:5]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
