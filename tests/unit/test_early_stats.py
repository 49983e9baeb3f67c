"""Memory and CPU read right after the container listing (gather.read_stats_early).

The cgroup reading waits 0.2 s between two CPU samples by design; a whole run
starts it with the listing so that it overlaps collection. These tests hold
what it reads, that the gathering takes the early reading instead of a second
one (named for the unit that asks), that a late one stays bounded, and which
command lines start it at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stackcheck.config import Service, Stack
from stackcheck.probes import docker_probe
from stackcheck.probes.deadline import Deadline, TimedOut
from stackcheck.probes.facts import StackFacts, StatsFacts
from stackcheck.probes.gather import Discovery, Need, _file_result, _task, read_stats_early

pytest_plugins = ["pytester"]

NUMBER = docker_probe.NUMBER_LABEL


@dataclass
class FakeContainer:
    id: str
    status: str = "running"
    labels: dict[str, str] = field(default_factory=dict)


def numbered(cid: str, number: int, status: str = "running") -> FakeContainer:
    return FakeContainer(cid, status, {NUMBER: str(number)})


def stack(**gaps: list[str]) -> Stack:
    services = {
        name: Service(name, gaps=tuple(gaps.get(name, ()))) for name in ("backend", "db", "worker")
    }
    return Stack(Path("stack.toml"), "s", "s", services)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The containers whose memory and CPU were read, in any order."""
    seen: list[str] = []
    lock = threading.Lock()

    def fake(client: Any, service: str, container: FakeContainer, on_host: bool) -> StatsFacts:
        with lock:
            seen.append(container.id)
        return StatsFacts(service=service, mem_usage=len(container.id))

    monkeypatch.setattr(docker_probe, "stats_facts", fake)
    return seen


def test_every_judged_running_container_is_read_once(reads: list[str]) -> None:
    discovery = Discovery(
        client=object(),
        groups={
            "backend": [numbered("b1", 1), numbered("b2", 2), numbered("b3", 3, "exited")],
            "db": [FakeContainer("d1")],
            "worker": [FakeContainer("w1", "restarting")],
            "stranger": [FakeContainer("x1")],  # not in the stack file
        },
        replicas={"backend": [1, 2, 3]},
    )
    read_stats_early(discovery, stack(), Deadline(5))
    assert discovery.early_stats is not None
    results = discovery.early_stats.collect()
    assert sorted(results) == ["b1", "b2", "d1"]
    assert sorted(reads) == ["b1", "b2", "d1"]


def test_a_service_with_declared_gaps_is_left_to_the_gathering(reads: list[str]) -> None:
    discovery = Discovery(
        client=object(), groups={"backend": [FakeContainer("b1")], "db": [FakeContainer("d1")]}
    )
    read_stats_early(discovery, stack(db=["test_memory_headroom"]), Deadline(5))
    assert discovery.early_stats is not None
    assert sorted(discovery.early_stats.collect()) == ["b1"]


@pytest.mark.parametrize("blind", [True, False])
def test_nothing_is_read_without_an_engine(reads: list[str], blind: bool) -> None:
    discovery = (
        Discovery(blind="engine down", groups={"db": [FakeContainer("d1")]})
        if blind
        else Discovery(client=None, groups={"db": [FakeContainer("d1")]})
    )
    read_stats_early(discovery, stack(), Deadline(5))
    assert discovery.early_stats is None
    assert reads == []


def task_for(discovery: Discovery, need: Need, container: FakeContainer) -> Any:
    return _task(object(), stack(), need, container, StackFacts(), Deadline(5), discovery)


def test_the_gathering_takes_the_early_reading_named_for_the_replica(reads: list[str]) -> None:
    b2 = numbered("b2", 2)
    discovery = Discovery(
        client=object(),
        groups={"backend": [numbered("b1", 1), b2]},
        replicas={"backend": [1, 2]},
    )
    read_stats_early(discovery, stack(), Deadline(5))
    result = task_for(discovery, Need("stats", "backend", replica=2), b2)()
    assert isinstance(result, StatsFacts)
    assert result.service == "backend#2"  # the early one was read as "backend"
    assert result.mem_usage == 2
    assert sorted(reads) == ["b1", "b2"]  # no second reading


def test_a_container_not_read_early_is_read_by_the_gathering(reads: list[str]) -> None:
    late = FakeContainer("b9")
    discovery = Discovery(client=object(), groups={"backend": [FakeContainer("b1")]})
    read_stats_early(discovery, stack(), Deadline(5))
    result = task_for(discovery, Need("stats", "backend"), late)()
    assert isinstance(result, StatsFacts) and result.service == "backend"
    assert sorted(reads) == ["b1", "b9"]


def test_an_early_reading_that_hangs_ends_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(docker_probe, "stats_facts", lambda *a: release.wait(10))
    c = FakeContainer("b1")
    discovery = Discovery(client=object(), groups={"backend": [c]})
    read_stats_early(discovery, stack(), Deadline(0.2))
    try:
        result = task_for(discovery, Need("stats", "backend"), c)()
    finally:
        release.set()
    assert isinstance(result, TimedOut)  # filed as a blind spot, never as healthy


def test_an_early_reading_that_raised_is_its_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> StatsFacts:
        raise ConnectionError("engine went away")

    monkeypatch.setattr(docker_probe, "stats_facts", broken)
    c = FakeContainer("b1")
    discovery = Discovery(client=object(), groups={"backend": [c]})
    read_stats_early(discovery, stack(), Deadline(5))
    result = task_for(discovery, Need("stats", "backend"), c)()
    assert isinstance(result, ConnectionError)
    facts = StackFacts()
    _file_result(stack(), facts, Need("stats", "backend"), result)
    assert facts.stats["backend"].blind


@pytest.mark.parametrize(
    ("args", "early"),
    [
        ([], True),
        (["-q", "--tb=short"], True),
        (["-k", "memory"], False),
        (["-m", "critical"], False),
        (["--collect-only"], False),
        (["--deselect", "checks/test_resources.py"], False),
        (["checks/test_resources.py::test_memory_headroom"], False),
        (["-n", "2"], False),
    ],
)
def test_which_runs_read_early(pytester: pytest.Pytester, args: list[str], early: bool) -> None:
    from stackcheck.plugin import GATHER_THREADS, _reads_every_container

    config = pytester.parseconfig(*args)
    assert _reads_every_container(config, 1) is early
    if early:
        assert _reads_every_container(config, GATHER_THREADS + 1) is False
