"""The cgroup stats reading agrees with `docker stats --no-stream`, under load.

The backend is put under the testbed's ``backend-memory-near-limit`` fault
(a process holding about 94 % of its 256 MiB limit) and a CPU load (four busy
loops, marked as a fault so that the reset recreates the container). Then
`docker stats --no-stream` (the CLI, as the runbook has it) runs while the
probe reads the container's cgroup three times; docker's window is the
engine's last sampling interval (about 1 s), each probe reading covers 0.2 s
inside the same seconds. Each test runs for both ways of reading: on this
host, as with a local engine (the host's ``sh`` on the container's cgroup),
and by exec in the container, as with every other engine.

Tolerances, stated: memory within 2 % of the limit (5 MiB of 256 MiB; the
hog holds steady, and docker's CLI rounds to 0.01 MiB); the limit exact to the
CLI's rounding; CPU within 15 points of one core, or 25 % of docker's figure
if larger (the windows differ in length and start, and other jobs on a shared
2-core machine take their share of the loop's core at different moments).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import pytest

from stackcheck.probes import docker_probe
from stackcheck.probes.facts import StatsFacts
from testbed import Testbed
from testbed.stack import FAULT_MARK, wait_for

MIB = 1 << 20
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
BUSY_LOOP = "while :; do :; done"  # sh: spins at once, no interpreter to start
LOOPS = 4  # 200 % of one core on an idle 2-core machine, their fair share on a loaded one
LOOPS_SETTLE_S = 1.5


def size(text: str) -> float:
    found = re.fullmatch(r"([0-9.]+)\s*([KMGT]?i?B)", text.strip())
    assert found, f"docker stats printed an unexpected size {text!r}"
    return float(found.group(1)) * UNITS[found.group(2)]


def docker_stats(name: str) -> tuple[float, float, float]:
    """CPU %, memory used and limit (bytes), as `docker stats --no-stream` prints them."""
    done = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.MemUsage}}", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    cpu, memory = done.stdout.strip().split("|")
    used, limit = memory.split(" / ")
    return float(cpu.rstrip("%")), size(used), size(limit)


def alongside(
    name: str, read: Callable[[], StatsFacts], times: int
) -> tuple[Any, list[StatsFacts]]:
    """docker stats and ``times`` probe readings, at the same time."""
    result: dict[str, tuple[float, float, float]] = {}
    runner = threading.Thread(target=lambda: result.update(cli=docker_stats(name)))
    runner.start()
    readings = [read() for _ in range(times)]
    runner.join(timeout=90)
    assert "cli" in result, "docker stats --no-stream did not answer"
    return result["cli"], readings


@pytest.fixture
def engine() -> docker.DockerClient:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine to compare with")
    return docker.from_env()


# Both ways of reading: on this host (the local engine's, no exec) and by exec
# in the container (every other engine's).
WAYS = {"host": ", read on the host", "exec": ""}


@pytest.fixture(params=sorted(WAYS))
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def reading_of(client: docker.DockerClient, testbed: Testbed, service: str, way: str) -> StatsFacts:
    container = testbed.container(service)
    facts = docker_probe.stats_facts(client, service, container, on_host=way == "host")
    assert facts.blind is None and facts.error is None, facts
    assert facts.source in (f"cgroup v1{WAYS[way]}", f"cgroup v2{WAYS[way]}"), facts.source
    return facts


def test_cgroup_reading_agrees_with_docker_stats_under_memory_and_cpu_load(
    testbed: Testbed, fault: Callable[[str], None], engine: docker.DockerClient, way: str
) -> None:
    fault("backend-memory-near-limit")
    for _ in range(LOOPS):
        testbed.exec("backend", ["sh", "-c", BUSY_LOOP, FAULT_MARK, "busy"], detach=True)
    wait_for(
        lambda: testbed.exec("backend", ["ps", "-eo", "args="]).count("busy") >= LOOPS or None,
        30,
        "the busy loops to start",
    )
    time.sleep(LOOPS_SETTLE_S)  # docker's window (its last two ticks) must hold the loops
    name = testbed.container("backend").name
    (cpu, used, limit), readings = alongside(
        name, lambda: reading_of(engine, testbed, "backend", way), 3
    )

    memory = sum(r.mem_usage for r in readings) / len(readings)
    assert readings[0].mem_limit == pytest.approx(limit, abs=0.01 * MIB)
    assert abs(memory - used) <= 0.02 * limit, (memory / MIB, used / MIB)
    assert memory >= 0.9 * limit  # the fault is what both see

    ours = sum(r.cpu_percent for r in readings) / len(readings)
    # Idle, the backend uses about 1 %; four loops take 200 % on an idle machine,
    # but only their fair share of a loaded one (about 7 % at load 110).
    assert max(ours, cpu) >= 5.0, f"the loops are not visible: {ours:.0f}%, {cpu:.0f}%"
    assert abs(ours - cpu) <= max(15.0, 0.25 * cpu), (ours, cpu)
    assert readings[0].online_cpus >= 1


def test_an_unlimited_container_is_measured_against_the_hosts_memory(
    testbed: Testbed, engine: docker.DockerClient, way: str
) -> None:
    name = testbed.container("db").name
    (_, used, limit), readings = alongside(name, lambda: reading_of(engine, testbed, "db", way), 1)
    assert not readings[0].mem_limited
    # The CLI prints the host's memory rounded to 0.01 GiB.
    assert readings[0].mem_limit == pytest.approx(limit, abs=0.01 * (1 << 30))
    assert abs(readings[0].mem_usage - used) <= 5 * MIB
