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
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from stackcheck.config import Service, Stack
from stackcheck.model import unit_name
from stackcheck.probes import docker_probe, host, network
from stackcheck.probes.deadline import Batch, Deadline, Pool, Starved, TimedOut
from stackcheck.probes.facts import (
    CommandFacts,
    ContainerFacts,
    DataFsFacts,
    HostFacts,
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

    ``replica`` names one container of a service that runs several (container
    probes only); None reads the service's judged-first container. ``command``
    needs carry the check's name and argv.
    """

    kind: str
    service: str
    target: str | None = None
    check: str = ""
    argv: tuple[str, ...] = ()
    replica: int | None = None

    @property
    def unit(self) -> str:
        return unit_name(self.service, self.replica)

    @property
    def key(self) -> str:
        return probe_key(self.kind, self.unit, self.target, self.check)


def probe_key(kind: str, service: str, target: str | None = None, check: str = "") -> str:
    """How a probe's result and duration are filed: ``pg:db``, ``net:backend#2->db``."""
    where = f"{service}->{target}" if target else service
    return f"{kind}:{where}" + (f":{check}" if check else "")


@dataclass
class Discovery:
    """The stack's containers, listed once per run and process.

    Listed as soon as the plugin is active, so that collection can name each
    replica of a scaled service in the test ids; the gathering then reuses the
    listing (and its client) instead of asking the engine again. ``blind``: the
    engine could not be asked; every container probe is then could-not-check.
    """

    blind: str | None = None
    client: Any = None
    # Service label -> its containers, in docker_probe.judged_first order.
    groups: dict[str, list[Any]] = field(default_factory=dict)
    # The stack file's services that run several containers: their numbers, ascending.
    replicas: dict[str, list[int]] = field(default_factory=dict)
    # Services with more than MAX_REPLICAS containers: how many there are.
    over_cap: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    # Memory and CPU readings started right after the listing (read_stats_early),
    # keyed by container id; the gathering takes them instead of reading again.
    early_stats: Batch | None = None

    def container(self, service: str, replica: int | None) -> Any | None:
        """The container a probe of ``service`` (one replica of it, or the whole) reads."""
        group = self.groups.get(service, [])
        if replica is None:
            return group[0] if group else None
        return docker_probe.replicas_of(group).get(replica)


def discover(stack: Stack, deadline: Deadline) -> Discovery:
    """List the stack's containers (bounded by ``deadline``); never raises."""
    batch = Batch(deadline)

    def work() -> tuple[Any, dict[str, Any]]:
        client = docker_probe.connect(stack, deadline)
        return client, docker_probe.find_containers(client, stack)

    batch.start("discover", work)
    found = batch.collect()["discover"]
    duration = batch.durations["discover"]
    if not isinstance(found, tuple):
        blind = (
            docker_probe.describe_engine_error(stack, found)
            if isinstance(found, BaseException)
            else f"Docker engine at {docker_probe.engine_address(stack)}: {found}"
        )
        return Discovery(blind=blind, duration_s=duration)
    client, groups = found
    discovery = Discovery(client=client, groups=groups, duration_s=duration)
    for service in stack.services:
        numbers = list(docker_probe.replicas_of(groups.get(service, [])))
        if len(numbers) > docker_probe.MAX_REPLICAS:
            discovery.over_cap[service] = len(numbers)
            numbers = numbers[: docker_probe.MAX_REPLICAS]
        if len(numbers) > 1:
            discovery.replicas[service] = numbers
    return discovery


def read_stats_early(
    discovery: Discovery, stack: Stack, deadline: Deadline, pool: Pool | None = None
) -> None:
    """Start reading every judged container's memory and CPU now, before collection ends.

    The cgroup reading waits ``cgroup.INTERVAL_S`` between its two CPU samples:
    the one probe whose length is set by design, not by the engine, and the
    longest of a healthy run. Started here it overlaps the collection of the
    checks instead of following it. Only for a run that reads every container's
    (plugin.Collector decides); a service with declared gaps is left to the
    gathering, which knows whether its checks read it at all.
    """
    if discovery.blind is not None or discovery.client is None:
        return
    batch = Batch(deadline, pool)
    on_host = docker_probe.is_local(stack)
    for service in discovery.groups:
        declared = stack.services.get(service)
        if declared is None or declared.gaps:
            continue
        numbers: list[int | None] = [*discovery.replicas.get(service, [])] or [None]
        for number in numbers:
            container = discovery.container(service, number)
            if container is not None and container.status == "running":
                client = discovery.client
                reading = partial(docker_probe.stats_facts, client, service, container, on_host)
                batch.start(container.id, reading)
    discovery.early_stats = batch


def _taken_early(batch: Batch, container_id: str, unit: str) -> Any:
    """The early reading of a container (waiting for it), named for the unit that asks."""
    result = batch.collect()[container_id]
    return replace(result, service=unit) if isinstance(result, StatsFacts) else result


def through_engine(service: Service, kind: str) -> bool:
    """Whether a ``kind`` probe of ``service`` runs through the Docker engine.

    The per-service paths of the stack file decide it for PostgreSQL
    (``postgres_via``) and HTTP (``health_via``): "exec" runs the runbook's
    command inside the container, so no port needs publishing. A future path
    (an SSH tunnel to an unpublished port, say) is one more value here and one
    more branch in ``_early_task``/``_task``.
    """
    if kind == "pg":
        return service.postgres_via == "exec"
    if kind == "http":
        return service.health_via == "exec"
    return kind in DOCKER_KINDS


def _early_task(
    service: Service, need: Need, deadline: Deadline, connect_s: float
) -> Callable[[], Any] | None:
    """The probe of a need that runs from the checker itself (None: nothing to run)."""
    if need.kind == "pg" and service.postgres_dsn:
        return partial(_pg_probe, service.name, service.postgres_dsn, connect_s)
    if need.kind == "http" and service.health_url:
        return partial(_http_probe, service.name, service.health_url, deadline, connect_s)
    return None


def _probe_error(result: Any) -> str | None:
    """Why a probe gave no facts: its own exception, or the deadline."""
    if isinstance(result, BaseException):
        return f"probe failed: {type(result).__name__}: {result}"
    if isinstance(result, (TimedOut, Starved)):
        return str(result)
    return None


def gather(
    stack: Stack,
    needs: Collection[Need],
    discovery: Discovery | None = None,
    pool: Pool | None = None,
    env_key: bytes | None = None,
    hosts: host.HostReadings | None = None,
) -> StackFacts:
    """Facts for exactly the given needs; ``discovery``: the containers, if listed
    already; probes on ``pool``'s threads if given (shared by every stack of a run).

    ``env_key``: the key the containers' environments are digested with
    (report/baseline.py); without one, no digest of them is taken. ``hosts``:
    the run's readings of Docker hosts, shared by the stacks on one host.
    """
    deadline = Deadline(stack.timeouts.probe_s)
    connect_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    facts = StackFacts()
    early = Batch(deadline, pool)
    for need in needs:
        if need.kind == "host":  # on the Docker host itself, beside the engine
            read = hosts.read if hosts is not None else host.host_facts
            early.start(need.key, partial(read, stack, deadline))
            continue
        service = stack.services[need.service]
        if through_engine(service, need.kind):
            continue
        task = _early_task(service, need, deadline, connect_s)
        if task is not None:
            early.start(need.key, task)

    docker_needs = [
        n for n in needs if n.kind != "host" and through_engine(stack.services[n.service], n.kind)
    ]
    if docker_needs:
        if discovery is None:
            discovery = discover(stack, deadline)
        facts.durations["discover"] = discovery.duration_s
        facts.replicas = {k: list(v) for k, v in discovery.replicas.items()}
        # Container facts of every service involved: the hints need their compose
        # labels, and a replica's report says how many of its siblings run.
        involved = {n.service for n in needs if n.kind != "host"} | {
            n.target for n in needs if n.target
        }
        for name in sorted(involved):
            docker_needs.append(Need("container", name))
            for number in discovery.replicas.get(name, []):
                docker_needs.append(Need("container", name, replica=number))
        _gather_docker(stack, set(docker_needs), deadline, facts, discovery, pool, env_key)

    results = early.collect()
    facts.durations.update(early.durations)
    for need in needs:
        result = results.get(need.key)
        if result is None:
            continue
        if need.kind == "host":
            reason = _probe_error(result)
            if reason:
                where = host.where(stack)
                result = HostFacts(where, blind=f"the Docker host {where}: {reason}")
            facts.host = result
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


def _pg_exec_probe(container: Any, service: str, user: str, dbname: str, connect_s: float) -> Any:
    from stackcheck.probes import postgres

    return postgres.exec_probe(container, service, user, dbname, connect_s)


def _http_exec_probe(
    container: Any, service: str, url: str, deadline: Deadline, connect_s: float
) -> HttpFacts:
    from stackcheck.probes import http

    return http.exec_facts(container, service, url, deadline, connect_s)


def _gather_docker(
    stack: Stack,
    needs: set[Need],
    deadline: Deadline,
    facts: StackFacts,
    discovery: Discovery,
    pool: Pool | None = None,
    env_key: bytes | None = None,
) -> None:
    if discovery.blind is not None:
        for need in needs:
            _file(stack, facts, need, blind=discovery.blind)
        return
    client = discovery.client

    # Container facts first: the others need the container's state and mounts.
    # A service's judged-first container is also one of its replicas: inspected once.
    containers = [n for n in needs if n.kind == "container"]
    batch = Batch(deadline, pool)
    task_of: dict[Need, str] = {}
    launched: set[str] = set()
    for need in sorted(containers, key=lambda n: (n.service, n.replica is None, n.replica or 0)):
        found = discovery.container(need.service, need.replica)
        task = f"container-id:{found.id}" if found is not None else need.key
        task_of[need] = task
        if task not in launched:
            launched.add(task)
            group = [found] if found is not None else []
            probe = partial(
                docker_probe.container_facts, client, need.service, group, stack, env_key
            )
            batch.start(task, probe)
    results = batch.collect()
    for need in containers:
        result = results[task_of[need]]
        facts.durations[need.key] = batch.durations[task_of[need]]
        _file_result(stack, facts, need, result)

    batch = Batch(deadline, pool)
    started = []
    for need in needs:
        if need.kind == "container":
            continue
        container = discovery.container(need.service, need.replica)
        state = container.status if container is not None else "missing"
        if container is None or (state != "running" and need.kind != "logs"):
            # The stack's fault, not a blind spot: nothing runs in a stopped container.
            what = "no container for this service" if container is None else f"container is {state}"
            if container is None and need.replica is not None:
                what = f"no container number {need.replica} of this service"
            _file(stack, facts, need, error=f"cannot look inside {need.unit}: {what}")
            continue
        batch.start(need.key, _task(client, stack, need, container, facts, deadline, discovery))
        started.append(need)
    _collect(stack, facts, batch, started)


def _task(
    client: Any,
    stack: Stack,
    need: Need,
    container: Any,
    facts: StackFacts,
    deadline: Deadline,
    discovery: Discovery,
) -> Callable[[], Any]:
    name = need.unit  # what the evidence names: the service, or one replica of it
    if need.kind == "stats":
        early = discovery.early_stats
        if early is not None and container.id in early:
            return partial(_taken_early, early, container.id, name)
        on_host = docker_probe.is_local(stack)
        return partial(docker_probe.stats_facts, client, name, container, on_host)
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
    service = stack.services[need.service]
    connect_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    if need.kind == "pg":
        user, dbname = service.postgres_user or "", service.postgres_db or ""
        return partial(_pg_exec_probe, container, name, user, dbname, connect_s)
    if need.kind == "http":
        url = service.health_url or ""
        return partial(_http_exec_probe, container, name, url, deadline, connect_s)
    return partial(command_facts, container, name, need.check, need.argv)


def _collect(stack: Stack, facts: StackFacts, batch: Batch, needs: list[Need]) -> None:
    results = batch.collect()
    facts.durations.update(batch.durations)
    for need in needs:
        _file_result(stack, facts, need, results[need.key])


def _file_result(stack: Stack, facts: StackFacts, need: Need, result: Any) -> None:
    if isinstance(result, BaseException):
        _file(stack, facts, need, blind=docker_probe.describe_engine_error(stack, result))
    elif isinstance(result, TimedOut):
        _file(stack, facts, need, blind=f"the Docker engine: {result}")
    elif isinstance(result, Starved):
        _file(stack, facts, need, blind=str(result))
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
    """Put a probe's result (or why there is none) where the fixtures look for it.

    Filed by unit: ``backend``, or ``backend#2`` for one replica of a scaled service.
    """
    name = need.unit
    if need.kind == "container":
        facts.containers[name] = result or ContainerFacts(need.service, blind=blind)
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
    elif need.kind == "pg":
        service = stack.services[need.service]
        if result is None:
            from stackcheck.probes import postgres

            result = postgres.describe_exec(
                name, service.postgres_user or "", service.postgres_db or ""
            )
            result.blind = blind
            if error:  # nothing answers in a stopped container: as a refused connection
                result.ping, result.error = "no response", error
        facts.pg[name] = result
    elif need.kind == "http":
        if result is None:
            url = stack.services[need.service].health_url or ""
            result = HttpFacts(name, url, blind=blind and f"GET {url}: {blind}")
            result.error = error and f"GET {url}: {error}"
        facts.http[name] = result
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
