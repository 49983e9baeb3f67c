"""Gather every fact one run needs about a stack: concurrently, once, bounded.

PostgreSQL and HTTP probes start at once; container discovery runs beside
them, and the per-container probes (events, stats, logs, execs) start as soon
as it answers. Everything shares one deadline, so the slowest probe, not the
sum of all, sets the run's length.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from stackcheck.config import Stack
from stackcheck.probes import docker_probe, http, network, postgres
from stackcheck.probes.deadline import Batch, Deadline
from stackcheck.probes.facts import (
    ContainerFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    StackFacts,
    StatsFacts,
)

# Which probes a check's verdict rests on.
PROBES_FOR_CHECK = {
    "container_running": "container",
    "container_stable": "container",
    "container_healthy": "container",
    "logs_clean": "logs",
    "memory_headroom": "stats",
    "cpu_headroom": "stats",
    "pg_ready": "pg",
    "pg_connections": "pg",
    "net_resolve": "net",
    "net_ping": "net",
    "net_port": "net",
    "http_health": "http",
}


def probe_key(kind: str, service: str, target: str | None = None) -> str:
    """How a probe's result and duration are filed: ``pg:db``, ``net:backend->db``."""
    return f"{kind}:{service}->{target}" if target else f"{kind}:{service}"


def _failed(result: Any) -> str | None:
    if isinstance(result, BaseException):
        return f"probe failed: {type(result).__name__}: {result}"
    if not hasattr(result, "error"):
        return str(result)  # TimedOut
    return None


def gather(stack: Stack, checks: Iterable[str]) -> StackFacts:
    """Facts for the given check names (all kinds a check needs, nothing more)."""
    kinds = {PROBES_FOR_CHECK[c] for c in checks if c in PROBES_FOR_CHECK}
    deadline = Deadline(stack.timeouts.probe_s)
    connect_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    facts = StackFacts()
    early = Batch(deadline)

    pg_services = [s for s in stack.services.values() if s.postgres_dsn]
    if "pg" in kinds:
        for service in pg_services:
            early.start(
                probe_key("pg", service.name),
                partial(postgres.probe, service.name, service.postgres_dsn or "", connect_s),
            )
    if "http" in kinds:
        for service in stack.services.values():
            if service.health_url:
                early.start(
                    probe_key("http", service.name),
                    partial(http.http_facts, service.name, service.health_url, deadline, connect_s),
                )

    docker_kinds = kinds & {"container", "stats", "logs", "net"}
    if docker_kinds:
        _gather_docker(stack, docker_kinds, deadline, facts)

    results = early.collect()
    facts.durations.update(early.durations)
    for service in pg_services if "pg" in kinds else []:
        pg = results[probe_key("pg", service.name)]
        reason = _failed(pg)
        if reason:
            pg = postgres.describe(service.name, service.postgres_dsn or "")
            pg.ping, pg.error = "no response", reason
        facts.pg[service.name] = pg
    for key, result in results.items():
        if key.startswith("http:"):
            name = key.partition(":")[2]
            if _failed(result):
                url = stack.services[name].health_url or ""
                result = HttpFacts(service=name, url=url, error=f"GET {url}: {_failed(result)}")
            facts.http[name] = result
    return facts


def _gather_docker(stack: Stack, kinds: set[str], deadline: Deadline, facts: StackFacts) -> None:
    discovery = Batch(deadline)

    def discover() -> tuple[Any, dict[str, Any]]:
        client = docker_probe.connect(stack, deadline)
        return client, docker_probe.find_containers(client, stack)

    discovery.start("discover", discover)
    found = discovery.collect()["discover"]
    facts.durations["discover"] = discovery.durations["discover"]
    if not isinstance(found, tuple):
        unusable = (
            docker_probe.describe_engine_error(stack, found)
            if isinstance(found, BaseException)
            else f"Docker engine at {docker_probe.engine_address(stack)}: {found}"
        )
        _all_failed(stack, facts, unusable)
        return
    client, groups = found

    batch = Batch(deadline)
    for name in stack.services:
        group = groups.get(name, [])
        if "container" in kinds:
            batch.start(
                probe_key("container", name),
                partial(docker_probe.container_facts, client, name, group, stack),
            )
        if not group:
            continue
        first = group[0]
        if "stats" in kinds and first.status == "running":
            batch.start(
                probe_key("stats", name), partial(docker_probe.stats_facts, client, name, first)
            )
        if "logs" in kinds:
            batch.start(
                probe_key("logs", name), partial(docker_probe.log_facts, first, name, stack.logs)
            )
    if "net" in kinds:
        step = max(1, min(3, int(stack.timeouts.connect_s)))
        for source, target in stack.edges():
            group = groups.get(source, [])
            port = stack.services[target].port
            if group and group[0].status == "running":
                batch.start(
                    probe_key("net", source, target),
                    partial(network.net_facts, group[0], source, target, port, step),
                )
            else:
                state = group[0].status if group else "missing"
                facts.net[(source, target)] = NetFacts(
                    source,
                    target,
                    port,
                    error=f"cannot run commands in {source}: container is {state}",
                )

    results = batch.collect()
    facts.durations.update(batch.durations)
    for key, result in results.items():
        kind, _, rest = key.partition(":")
        reason = _failed(result)
        if kind == "net":
            source, _, target = rest.partition("->")
            if reason:
                result = NetFacts(source, target, stack.services[target].port, error=reason)
            facts.net[(source, target)] = result
            continue
        if isinstance(result, BaseException):
            reason = docker_probe.describe_engine_error(stack, result)
        if kind == "container":
            facts.containers[rest] = result if not reason else ContainerFacts(rest, error=reason)
        elif kind == "stats":
            facts.stats[rest] = result if not reason else StatsFacts(rest, error=reason)
        elif kind == "logs":
            facts.logs[rest] = result if not reason else LogFacts(rest, error=reason)
    for name in stack.services:
        group = groups.get(name, [])
        if "stats" in kinds and name not in facts.stats:
            state = group[0].status if group else "missing"
            facts.stats[name] = StatsFacts(name, error=f"no stats: container is {state}")
        if "logs" in kinds and name not in facts.logs:
            facts.logs[name] = LogFacts(name, error="no logs: no container for this service")


def _all_failed(stack: Stack, facts: StackFacts, reason: str) -> None:
    for name in stack.services:
        facts.containers[name] = ContainerFacts(name, error=reason)
        facts.stats[name] = StatsFacts(name, error=reason)
        facts.logs[name] = LogFacts(name, error=reason)
    for source, target in stack.edges():
        facts.net[(source, target)] = NetFacts(
            source, target, stack.services[target].port, error=reason
        )
