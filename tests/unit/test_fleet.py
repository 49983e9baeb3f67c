"""A fleet of stacks in one run (issue 11, parts 4 and 6): ``--stack`` directories
and globs, each stack's facts gathered once under xdist, probe threads pooled."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from reportbench import DB_FAILED, DB_STOPPED, TESTBED, TESTBED_ITEMS, TESTBED_SKIPPED, CheckRun

from stackcheck import fleet
from stackcheck.config import load_stack
from stackcheck.probes.deadline import Batch, Deadline, Pool, Starved, TimedOut
from stackcheck.probes.gather import Need, gather

pytest_plugins = ("pytester",)

# Records every gathering: which process gathered which stack.
COUNTING = """
import os
import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_stackcheck_gather(stack, needs):
    with open(os.environ["GATHER_LOG"], "a") as log:
        log.write(f"{os.getpid()} {stack.name}\\n")
    return (yield)
"""


def fleet_specs(n: int, name: str = "stack-{i}") -> list[dict[str, Any]]:
    return [
        {
            **TESTBED,
            "name": name.format(i=i),
            "compose_project": f"p{i}",
            "file": f"fleet/s{i}.toml",
        }
        for i in range(n)
    ]


def fleet_run(checkrun: CheckRun, specs: list[dict[str, Any]], broken: int = 3) -> None:
    (checkrun.path / "fleet").mkdir(exist_ok=True)
    checkrun.scenario({}, stacks=specs, by_stack={specs[broken]["name"]: DB_STOPPED})
    # The fabricating plugin reads the scenario beside each stack file.
    (checkrun.path / "fleet" / "scenario.json").write_text(
        (checkrun.path / "scenario.json").read_text()
    )
    (checkrun.path / "counting.py").write_text(COUNTING)


def gathered(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split(" ", 1)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def verdicts(run_dir: Path, names: list[str]) -> dict[str, Any]:
    found = {}
    for name in names:
        summary = json.loads((run_dir / f"summary-{name}.json").read_text())
        found[name] = (
            summary["status"],
            summary["root_causes"],
            sorted((c["key"], c["outcome"], c["role"], c["caused_by"]) for c in summary["checks"]),
        )
    return found


def fleet_args(checkrun: CheckRun, reports: str, *extra: str) -> list[str]:
    return [
        "checks",
        "-p",
        "fabricated",
        "-p",
        "counting",
        "-p",
        "no:cacheprovider",
        "--stack",
        "fleet",
        f"--reports-dir={reports}",
        *extra,
    ]


def test_a_fleet_under_xdist_gathers_each_stack_once_and_reports_as_serial(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = fleet_specs(8)
    names = [s["name"] for s in specs]
    fleet_run(checkrun, specs)
    serial_log, parallel_log = checkrun.path / "serial.log", checkrun.path / "parallel.log"

    monkeypatch.setenv("GATHER_LOG", str(serial_log))
    serial = checkrun.pytester.runpytest_subprocess(*fleet_args(checkrun, "serial"))
    monkeypatch.setenv("GATHER_LOG", str(parallel_log))
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")
    parallel = checkrun.pytester.runpytest_subprocess(
        *fleet_args(checkrun, "parallel", "-n", "auto")
    )

    assert serial.ret == parallel.ret == 1
    assert "created: 2/2 workers" in parallel.stdout.str()
    assert verdicts(checkrun.path / "serial", names) == verdicts(checkrun.path / "parallel", names)
    broken = verdicts(checkrun.path / "parallel", names)["stack-3"]
    assert broken[0] == "unhealthy" and broken[1] == ["stack-3/db:container_running"]
    assert all(
        verdicts(checkrun.path / "parallel", names)[n][0] == "healthy"
        for n in names
        if n != "stack-3"
    )
    for result in (serial, parallel):
        result.assert_outcomes(
            passed=8 * (TESTBED_ITEMS - TESTBED_SKIPPED) - DB_FAILED,
            failed=DB_FAILED,
            skipped=8 * TESTBED_SKIPPED,
        )
        assert result.stdout.str().count("ROOT CAUSE ") == 1

    # Once each, serially in one process; under xdist in the worker that ran it.
    serial_gathers = gathered(serial_log)
    assert sorted(n for _, n in serial_gathers) == sorted(names)
    assert len({pid for pid, _ in serial_gathers}) == 1
    parallel_gathers = gathered(parallel_log)
    assert Counter(n for _, n in parallel_gathers) == Counter(names)
    assert len({pid for pid, _ in parallel_gathers}) == 2  # both workers had stacks


def test_two_popen_transports_give_the_serial_verdicts(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way past one machine is xdist's own --tx; popen stands in for ssh=."""
    specs = fleet_specs(3)
    names = [s["name"] for s in specs]
    fleet_run(checkrun, specs, broken=1)
    log = checkrun.path / "tx.log"
    monkeypatch.setenv("GATHER_LOG", str(checkrun.path / "serial.log"))
    checkrun.pytester.runpytest_subprocess(*fleet_args(checkrun, "serial"))
    monkeypatch.setenv("GATHER_LOG", str(log))
    result = checkrun.pytester.runpytest_subprocess(
        *fleet_args(checkrun, "tx", "--tx", "2*popen", "--dist", "load")
    )
    assert result.ret == 1
    assert "created: 2/2 workers" in result.stdout.str()
    assert verdicts(checkrun.path / "tx", names) == verdicts(checkrun.path / "serial", names)
    assert Counter(n for _, n in gathered(log)) == Counter(names)


def test_auto_starts_no_more_workers_than_stacks(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "2")
    result = checkrun.run("-n", "auto", subprocess=True)
    assert result.ret == 0
    assert "created: 1/1 worker" in result.stdout.str()


def test_one_stack_under_two_workers_is_gathered_once(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    (checkrun.path / "counting.py").write_text(COUNTING)
    log = checkrun.path / "gather.log"
    monkeypatch.setenv("GATHER_LOG", str(log))
    result = checkrun.run("-n", "2", "-p", "counting", subprocess=True)
    assert result.ret == 0
    assert [n for _, n in gathered(log)] == ["testbed"]


# ---------------------------------------------------------------- --stack PATH


def write_stack(path: Path, name: str, project: str = "p") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[stack]\nname = "{name}"\ncompose_project = "{project}"\n[services.db]\nport = 5432\n'
    )
    return path


def test_a_directory_is_its_toml_files_sorted(tmp_path: Path) -> None:
    write_stack(tmp_path / "d" / "b.toml", "b")
    write_stack(tmp_path / "d" / "a.toml", "a")
    (tmp_path / "d" / "notes.txt").write_text("not a stack")
    (tmp_path / "d" / "sub.toml").mkdir()
    found = fleet.stack_paths(["d"], tmp_path)
    assert [p.name for p in found] == ["a.toml", "b.toml"]


def test_a_glob_and_the_same_file_twice(tmp_path: Path) -> None:
    for name in ("x1", "x2", "y1"):
        write_stack(tmp_path / "s" / f"{name}.toml", name)
    found = fleet.stack_paths(["s/x*.toml", "s/x1.toml", "s"], tmp_path)
    assert [p.name for p in found] == ["x1.toml", "x2.toml", "y1.toml"]


def test_a_file_named_like_a_glob_is_that_file(tmp_path: Path) -> None:
    literal = write_stack(tmp_path / "a[1].toml", "literal")
    write_stack(tmp_path / "a1.toml", "other")
    assert fleet.stack_paths(["a[1].toml"], tmp_path) == [Path(literal.name)]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("empty", "--stack 'empty': no *.toml stack file in it"),
        ("nothing/*.toml", "--stack 'nothing/*.toml': no stack file matches"),
        ("empty/\x1b[31m*.toml", "--stack 'empty/\\x1b[31m*.toml': no stack file matches"),
    ],
)
def test_an_empty_directory_or_glob_is_a_usage_error(
    tmp_path: Path, arg: str, message: str
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(pytest.UsageError) as raised:
        fleet.stack_paths([arg], tmp_path)
    assert str(raised.value) == message


def test_the_run_names_both_files_of_a_duplicate_stack_name(pytester: pytest.Pytester) -> None:
    import factbench

    factbench.lay_out(pytester.path)
    write_stack(pytester.path / "fleet" / "a.toml", "prod", "p1")
    write_stack(pytester.path / "fleet" / "b.toml", "prod", "p2")
    result = pytester.runpytest_subprocess("checks", "--stack", "fleet", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1, errors
    assert (
        "fleet/a.toml and " in errors[0] and "fleet/b.toml both name the stack 'prod'" in errors[0]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_an_empty_stack_directory_ends_the_run_in_one_line(pytester: pytest.Pytester) -> None:
    import factbench

    factbench.lay_out(pytester.path)
    (pytester.path / "fleet").mkdir()
    result = pytester.runpytest_subprocess("checks", "--stack", "fleet", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line.strip()] == [
        "ERROR: --stack 'fleet': no *.toml stack file in it"
    ]


# ------------------------------------------------------------ who runs what


def scopes(tmp_path: Path, stacks: int) -> fleet.Scopes:
    (tmp_path / "checks").mkdir(exist_ok=True)
    return fleet.Scopes(tmp_path, [tmp_path / "checks"], stacks)


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("checks/test_pg.py::test_pg_ready[prod/db]", "stack:prod"),
        ("checks/test_net.py::test_net_port[prod/backend->db]", "stack:prod"),
        ("checks/test_pg.py::test_pg_ready[a/b [x]::c/db]", "stack:a/b [x]::c"),
        ("checks/test_pg.py::test_pg_ready[prod/backend#2]", "stack:prod"),
        ("checks/test_pg.py::test_pg_ready[db]", "checks/test_pg.py::test_pg_ready[db]"),
        ("other/test_x.py::test_y[prod/db]", "other/test_x.py::test_y[prod/db]"),
        ("checks/test_pg.py::test_plain", "checks/test_pg.py::test_plain"),
    ],
)
def test_each_stack_is_one_unit_of_work(tmp_path: Path, nodeid: str, scope: str) -> None:
    assert scopes(tmp_path, 2)(nodeid) == scope


def test_with_one_stack_all_its_checks_are_one_unit(tmp_path: Path) -> None:
    scope = scopes(tmp_path, 1)
    assert scope("checks/test_pg.py::test_pg_ready[db]") == "stack:"
    assert scope("checks/test_http.py::test_http_health[backend]") == "stack:"


def test_the_plan_balances_stacks_and_is_the_same_everywhere(tmp_path: Path) -> None:
    scope = scopes(tmp_path, 5)
    sizes = {"a": 19, "b": 19, "c": 10, "d": 25, "e": 3}
    collection = [f"checks/t.py::test_{i}[{s}/db]" for s, n in sizes.items() for i in range(n)]
    shares = fleet.plan(collection, scope, 2)
    assert shares == fleet.plan(list(collection), scope, 2)
    assert sorted(k for share in shares for k in share) == sorted(f"stack:{s}" for s in sizes)
    loads = [sum(sizes[k.split(":")[1]] for k in share) for share in shares]
    assert max(loads) - min(loads) <= 3  # 38 / 38 at best
    # More workers than stacks: the extra ones get nothing.
    assert [len(s) for s in fleet.plan(collection, scope, 7)].count(0) == 2


# ------------------------------------------------------------------- pooling


def test_a_pool_holds_at_most_its_threads_whatever_it_is_given() -> None:
    pool = Pool(4)
    deadline = Deadline(5)
    batch = Batch(deadline, pool)
    running = Counter[str]()
    lock = threading.Lock()
    most = 0

    def task() -> int:
        nonlocal most
        with lock:
            running["now"] += 1
            most = max(most, running["now"])
        time.sleep(0.01)
        with lock:
            running["now"] -= 1
        return 1

    for i in range(60):
        batch.start(f"t{i}", task)
    results = batch.collect()
    assert list(results.values()) == [1] * 60
    assert pool.most_threads == 4 and most <= 4


def test_a_probe_that_never_got_a_thread_is_starved_not_timed_out() -> None:
    pool = Pool(1)
    hold = threading.Event()
    batch = Batch(Deadline(0.3), pool)
    batch.start("hung", hold.wait)
    batch.start("queued", lambda: "ran")
    results = batch.collect()
    hold.set()
    assert isinstance(results["hung"], TimedOut)
    assert isinstance(results["queued"], Starved)
    assert "all 1 of its probe threads were busy" in str(results["queued"])


def test_a_starved_database_probe_is_the_checkers_blindness(tmp_path: Path) -> None:
    """The pool's limit must never read as PostgreSQL not answering."""
    stack = load_stack(_stack_with_db(tmp_path / "s.toml"))
    pool = Pool(1)
    hold = threading.Event()
    pool.submit(hold.wait)  # the only thread, busy past the deadline
    try:
        facts = gather(stack, [Need("pg", "db")], pool=pool)
    finally:
        hold.set()
    found = facts.pg["db"]
    assert found.blind and "probe threads were busy" in found.blind
    assert found.error is None and found.ping != "no response"


def _stack_with_db(path: Path) -> Path:
    path.write_text(
        '[stack]\nname = "s"\ncompose_project = "p"\n[timeouts]\nprobe_s = 0.3\nconnect_s = 0.3\n'
        '[services.db]\npostgres_dsn = "postgresql://u@127.0.0.1:9/db"\n'
    )
    return path


def test_idle_pool_threads_end_so_past_runs_keep_none() -> None:
    pool = Pool(8, idle_s=0.1)
    batch = Batch(Deadline(5), pool)
    for i in range(8):
        batch.start(f"t{i}", lambda: time.sleep(0.05))
    batch.collect()
    assert pool.most_threads == 8
    wait_until = time.monotonic() + 5
    while pool.threads and time.monotonic() < wait_until:
        time.sleep(0.02)
    assert pool.threads == 0
    closed = Pool(2, idle_s=60)
    Batch(Deadline(5), closed).start("x", lambda: None)
    closed.close()
    wait_until = time.monotonic() + 5
    while closed.threads and time.monotonic() < wait_until:
        time.sleep(0.02)
    assert closed.threads == 0
