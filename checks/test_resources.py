"""Runbook Quick diagnosis 4 and Step 3: memory and CPU against the container's limits."""

from stackcheck import Fix, Layer, check, expect
from stackcheck.config import Stack
from stackcheck.probes.facts import ContainerFacts, StatsFacts
from stackcheck.runbook import ALL, DIAGNOSE_RESOURCES, RESOLVE_RESOURCES, STATS, UP

RELIEVE = Fix(RESOLVE_RESOURCES, (STATS, UP))


@check(
    title="memory use below the limit",
    layer=Layer.RESOURCES,
    step=DIAGNOSE_RESOURCES,
    fix=RELIEVE,
    alerts=(*ALL, "high_error_rate"),
)
def test_memory_headroom(stats: StatsFacts, stack: Stack) -> None:
    expect(stats.error is None, stats.error or "")
    expect(stats.mem_limit > 0, f"{stats.service}: the engine reported no memory limit")
    percent = 100 * stats.mem_usage / stats.mem_limit
    limit = "its memory limit" if stats.mem_limited else "host memory (no container limit)"
    threshold = stack.thresholds.memory_percent
    expect(
        percent < threshold,
        f"{stats.service} uses {stats.mem_usage / 2**20:.0f} MiB of {limit} "
        f"{stats.mem_limit / 2**20:.0f} MiB ({percent:.0f}% >= {threshold:g}%)",
    )


@check(
    title="CPU use below the limit",
    layer=Layer.RESOURCES,
    step=DIAGNOSE_RESOURCES,
    fix=RELIEVE,
    alerts=(*ALL, "high_error_rate"),
)
def test_cpu_headroom(stats: StatsFacts, container: ContainerFacts, stack: Stack) -> None:
    expect(stats.error is None, stats.error or "")
    cores = container.cpu_limit or stats.online_cpus
    percent = stats.cpu_percent / cores
    limit = "its CPU limit" if container.cpu_limit else "all host CPUs (no container limit)"
    threshold = stack.thresholds.cpu_percent
    expect(
        percent < threshold,
        f"{stats.service} uses {percent:.0f}% of {limit} ({cores:g} cores) >= {threshold:g}%",
    )
