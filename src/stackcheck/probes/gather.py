"""Gather the facts one run needs about a stack: concurrently, once, bounded.

The collector derives the needs from the checks it collected (each check reads
some fact fixtures, on some services or edges), so a run of one check probes
only what that check reads. PostgreSQL and HTTP probes start at once; container
discovery runs beside them, and the per-container probes (events, stats, logs,
execs) start as soon as it answers. Everything shares one deadline, so the
slowest probe, not the sum of all, sets the run's length.

Nothing here raises: a probe's own failure, or the engine's, becomes the facts'
``blind`` reason; what the probes find wrong with the stack becomes ``error``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Any

from stackcheck.config import Stack
from stackcheck.probes import docker_probe, network
from stackcheck.probes.deadline import Batch, Deadline, TimedOut
from stackcheck.probes.facts import (
    CommandFacts,
    ContainerFacts,
    DataFsFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    PgFacts,
    StackFacts,
    StatsFacts,
)

DOCKER_KINDS = frozenset({"container", "stats", "logs", "net", "datafs", "command"})
COMMAND_OUTPUT_CAP = 4096


@dataclass(frozen=True)
class Need:
    """One probe a collected check reads: ``kind`` on ``service`` (or the edge to ``target``).

    ``command`` needs carry the check's name and argv.
    """

    kind: str
    service: str
    target: str | None = None
    check: str = ""
    argv: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return probe_key(self.kind, self.service, self.target, self.check)


def probe_key(kind: str, service: str, target: str | None = None, check: str = "") -> str:
    """How a probe's result and duration are filed: ``pg:db``, ``net:backend->db``."""
    where = f"{service}->{target}" if target else service
    return f"{kind}:{where}" + (f":{check}" if check else "")


def _probe_error(result: Any) -> str | None:
    """Why a probe gave no facts: its own exception, or the deadline."""
    if isinstance(result, BaseException):
        return f"probe failed: {type(result).__name__}: {result}"
    if isinstance(result, TimedOut):
        return str(result)
    return None


def gather(stack: Stack, needs: Collection[Need]) -> StackFacts:
    """Facts for exactly the given needs."""
    deadline = Deadline(stack.timeouts.probe_s)
    connect_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    facts = StackFacts()
    early = Batch(deadline)
    for need in needs:
        service = stack.services[need.service]
        if need.kind == "pg" and service.postgres_dsn:
            dsn = service.postgres_dsn
            early.start(need.key, partial(_pg_probe, service.name, dsn, connect_s))
        elif need.kind == "http" and service.health_url:
            url = service.health_url
            early.start(need.key, partial(_http_probe, service.name, url, deadline, connect_s))

    docker_needs = [n for n in needs if n.kind in DOCKER_KINDS]
    if docker_needs:
        # Container facts of every service involved: the hints need their compose labels.
        services = {n.service for n in needs} | {n.target for n in needs if n.target}
        docker_needs += [Need("container", s) for s in sorted(services)]
        _gather_docker(stack, set(docker_needs), deadline, facts)

    results = early.collect()
    facts.durations.update(early.durations)
    for need in needs:
        result = results.get(need.key)
        if result is None:
            continue
        service = stack.services[need.service]
        reason = _probe_error(result)
        if need.kind == "pg":
            if reason:
                from stackcheck.probes import postgres

                result = postgres.describe(service.name, service.postgres_dsn or "")
                if isinstance(results[need.key], TimedOut):
                    # A server that never answers is the stack's fault (db frozen).
                    result.ping, result.error = "no response", reason
                else:
                    result.blind = reason
            facts.pg[need.service] = result
        elif need.kind == "http":
            if reason:
                url = service.health_url or ""
                result = HttpFacts(service=service.name, url=url)
                if isinstance(results[need.key], TimedOut):
                    result.error = f"GET {url}: {reason}"  # the API hangs
                else:
                    result.blind = f"GET {url}: {reason}"
            facts.http[need.service] = result
    return facts


# The client libraries are imported by the probes that use them, in their own
# threads, so a run that needs none of them (--collect-only, a stack without
# PostgreSQL or health URL) does not load them. psycopg is loaded at start-up
# anyway when the stack file has a DSN (the loader validates it with libpq).
def _pg_probe(service: str, dsn: str, connect_s: float) -> PgFacts:
    from stackcheck.probes import postgres

    return postgres.probe(service, dsn, connect_s)


def _http_probe(service: str, url: str, deadline: Deadline, connect_s: float) -> HttpFacts:
    from stackcheck.probes import http

    return http.http_facts(service, url, deadline, connect_s)


def _gather_docker(stack: Stack, needs: set[Need], deadline: Deadline, facts: StackFacts) -> None:
    discovery = Batch(deadline)

    def discover() -> tuple[Any, dict[str, Any]]:
        client = docker_probe.connect(stack, deadline)
        return client, docker_probe.find_containers(client, stack)

    discovery.start("discover", discover)
    found = discovery.collect()["discover"]
    facts.durations["discover"] = discovery.durations["discover"]
    if not isinstance(found, tuple):
        blind = (
            docker_probe.describe_engine_error(stack, found)
            if isinstance(found, BaseException)
            else f"Docker engine at {docker_probe.engine_address(stack)}: {found}"
        )
        for need in needs:
            _file(stack, facts, need, blind=blind)
        return
    client, groups = found

    # Container facts first: the others need the container's state and mounts.
    containers = [n for n in needs if n.kind == "container"]
    batch = Batch(deadline)
    for need in containers:
        group = groups.get(need.service, [])
        batch.start(
            need.key, partial(docker_probe.container_facts, client, need.service, group, stack)
        )
    _collect(stack, facts, batch, containers)

    batch = Batch(deadline)
    started = []
    for need in needs:
        if need.kind == "container":
            continue
        group = groups.get(need.service, [])
        state = group[0].status if group else "missing"
        if not group or (state != "running" and need.kind != "logs"):
            # The stack's fault, not a blind spot: nothing runs in a stopped container.
            what = "no container for this service" if not group else f"container is {state}"
            _file(stack, facts, need, error=f"cannot look inside {need.service}: {what}")
            continue
        task = _task(client, stack, need, group[0], facts, deadline)
        batch.start(need.key, task)
        started.append(need)
    _collect(stack, facts, batch, started)


def _task(
    client: Any, stack: Stack, need: Need, container: Any, facts: StackFacts, deadline: Deadline
) -> Callable[[], Any]:
    name = need.service
    if need.kind == "stats":
        return partial(docker_probe.stats_facts, client, name, container)
    if need.kind == "logs":
        # The deadline: the log patterns' matching budget is a share of what is left.
        return partial(docker_probe.log_facts, container, name, stack.logs, deadline)
    if need.kind == "net":
        target = need.target or ""
        step = max(1, min(3, int(stack.timeouts.connect_s)))
        port = stack.services[target].port
        return partial(network.net_facts, container, name, target, port, step)
    if need.kind == "datafs":
        known = facts.containers.get(name) or ContainerFacts(name)
        return partial(docker_probe.datafs_facts, container, name, known)
    return partial(command_facts, container, name, need.check, need.argv)


def _collect(stack: Stack, facts: StackFacts, batch: Batch, needs: list[Need]) -> None:
    results = batch.collect()
    facts.durations.update(batch.durations)
    for need in needs:
        result = results[need.key]
        if isinstance(result, BaseException):
            _file(stack, facts, need, blind=docker_probe.describe_engine_error(stack, result))
        elif isinstance(result, TimedOut):
            _file(stack, facts, need, blind=f"the Docker engine: {result}")
        else:
            _file(stack, facts, need, result=result)


def _file(
    stack: Stack,
    facts: StackFacts,
    need: Need,
    result: Any = None,
    blind: str | None = None,
    error: str | None = None,
) -> None:
    """Put a probe's result (or why there is none) where the fixtures look for it."""
    name = need.service
    if need.kind == "container":
        facts.containers[name] = result or ContainerFacts(name, blind=blind)
    elif need.kind == "stats":
        facts.stats[name] = result or StatsFacts(name, blind=blind, error=error)
    elif need.kind == "logs":
        facts.logs[name] = result or LogFacts(name, blind=blind, error=error)
    elif need.kind == "datafs":
        facts.datafs[name] = result or DataFsFacts(name, blind=blind, error=error)
    elif need.kind == "net":
        target = need.target or ""
        port = stack.services[target].port
        facts.net[(name, target)] = result or NetFacts(name, target, port, blind=blind, error=error)
    elif need.kind == "command":
        facts.commands[(need.check, name)] = result or CommandFacts(
            name, need.check, need.argv, blind=blind, error=error
        )


def command_facts(container: Any, service: str, check: str, argv: tuple[str, ...]) -> CommandFacts:
    """A check's own command inside the container: its exit code and the start of its output."""
    import docker.errors  # only runs with a reachable engine

    facts = CommandFacts(service, check, argv)
    try:
        result = container.exec_run(list(argv), stdout=True, stderr=True)
    except docker.errors.APIError as exc:
        network.file_refusal(facts, exc, f"{argv[0]} in {container.name}")
        return facts
    output = bytes(result.output or b"")[:COMMAND_OUTPUT_CAP]
    facts.output = output.decode("utf-8", errors="replace")
    facts.exit_code = result.exit_code
    # The runtime's own word for a missing executable: the image lacks the tool.
    if result.exit_code in (126, 127) and (
        "executable file not found" in facts.output or "not found" in facts.output
    ):
        facts.blind = (
            f"{argv[0]} is not in {container.name}'s image: install it, or declare the gap "
            f'in the stack file (gaps = ["{check}"] under [services.{service}])'
        )
    return facts
