"""Runbook Step 8: is the Docker host itself sound: its engine running, disk and memory to spare?

Read on the host through testinfra (locally, or over the engine's SSH connection).
A failure here sits beneath every container of the stack: a full disk explains a
database that stopped, a dead engine explains why nothing else could be checked.
"""

from stackcheck import Command, Fix, Layer, Safety, check, expect
from stackcheck.config import Stack
from stackcheck.probes.facts import HostFacts
from stackcheck.probes.host import reachable
from stackcheck.runbook import (
    ALL,
    DIAGNOSE_HOST,
    RESOLVE_HOST_DISK,
    RESOLVE_HOST_ENGINE,
    RESOLVE_HOST_MEMORY,
)

DF = Command("${on_host}df -h $data_root", Safety.READ_ONLY)


@check(
    title="the Docker engine runs on the host",
    layer=Layer.HOST,
    rank=0,
    step=DIAGNOSE_HOST,
    fix=Fix(
        RESOLVE_HOST_ENGINE,
        (
            Command("${on_host}systemctl status docker", Safety.READ_ONLY),
            Command("${on_host}journalctl -u docker --since -1h --no-pager", Safety.READ_ONLY),
            Command("${on_host}systemctl start docker", Safety.MUTATING),
        ),
    ),
    alerts=ALL,
    host=True,
    applies=reachable,
)
def test_host_engine_running(host: HostFacts) -> None:
    expect(
        host.engine_processes,
        f"no dockerd process runs on {host.host}: the Docker engine is down, so every "
        "container of the stack is too (and nothing else can be checked)",
    )


@check(
    title="the disk where the engine keeps its data has free space",
    layer=Layer.HOST,
    rank=1,
    step=DIAGNOSE_HOST,
    fix=Fix(
        RESOLVE_HOST_DISK,
        (
            DF,
            Command("$docker system df", Safety.READ_ONLY),
            Command("$docker image prune", Safety.DESTRUCTIVE),
        ),
    ),
    alerts=ALL,
    host=True,
    applies=reachable,
)
def test_host_disk(host: HostFacts, stack: Stack) -> None:
    percent = host.disk_used_percent
    threshold = stack.thresholds.host_disk_percent
    expect(
        percent < threshold,
        f"the filesystem of {host.data_root} ({host.disk_mount}, the engine's data, from "
        f"{host.data_root_from}) on {host.host} is {percent:.0f}% full (>= {threshold:g}%): "
        f"{host.disk_avail_kb / 1024:.0f} MiB free of {host.disk_size_kb / 1024:.0f} MiB; "
        "containers fail to write, and PostgreSQL stops",
    )


@check(
    title="the Docker host has memory available",
    layer=Layer.HOST,
    rank=1,
    step=DIAGNOSE_HOST,
    fix=Fix(
        RESOLVE_HOST_MEMORY,
        (
            Command("${on_host}free -m", Safety.READ_ONLY),
            Command("$docker stats --no-stream", Safety.READ_ONLY),
        ),
    ),
    alerts=ALL,
    host=True,
    applies=reachable,
)
def test_host_memory(host: HostFacts, stack: Stack) -> None:
    percent = host.mem_used_percent
    threshold = stack.thresholds.host_memory_percent
    expect(
        percent < threshold,
        f"{percent:.0f}% of the memory of {host.host} is in use (>= {threshold:g}%; "
        f"{host.mem_available_kb / 1024:.0f} MiB available of {host.mem_total_kb / 1024:.0f} "
        "MiB): the kernel kills containers to free memory",
    )
