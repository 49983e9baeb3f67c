"""What each check's report carries to the reporter: builtins only, passwords removed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from stackcheck.config import Stack
from stackcheck.definition import Check, Fix
from stackcheck.model import CheckRef, Payload
from stackcheck.probes import host
from stackcheck.probes.docker_probe import compose_command, docker_command
from stackcheck.probes.facts import StackFacts
from stackcheck.redact import redact
from stackcheck.report import baseline
from stackcheck.where import needs_of


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


def _container(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    container = facts.containers.get(ref.unit)
    if container is None or container.blind:
        return {}
    return {
        "container": container.name or None,
        "container_id": container.id[:12] or None,
        "state": container.state,
        "exit_code": container.exit_code,
        "oom_killed": container.oom_killed or container.recent_ooms > 0,
        "restart_count": container.restart_count,
        "recent_restarts": container.recent_dies,
        "started_at": container.started_at,
        "finished_at": container.finished_at,
        "health_status": container.health_status,
        "mem_limit_mb": _mib(container.mem_limit) if container.mem_limit else None,
    }


def _stats(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    stats = facts.stats.get(ref.unit)
    if stats is None or stats.blind or stats.error or not stats.mem_limit:
        return {}
    return {
        "mem_usage_mb": _mib(stats.mem_usage),
        "mem_limit_mb": _mib(stats.mem_limit),
        "mem_percent": round(100 * stats.mem_usage / stats.mem_limit, 1),
        "cpu_percent": round(stats.cpu_percent, 1),
    }


def _logs(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    logs = facts.logs.get(ref.unit)
    return {"log_lines": list(logs.matches)} if logs is not None and logs.matches else {}


def _pg(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    pg = facts.pg.get(ref.service)
    if pg is None:
        return {}
    return {
        "pg_outcome": pg.ping,
        "connections_in_use": pg.in_use,
        "connections_usable": pg.usable,
        "max_connections": pg.max_connections,
        "pg_user": pg.user,
        "pg_host": pg.host,
        "pg_port": pg.port,
        "pg_dbname": pg.dbname,
    }


def _net(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    net = facts.net.get((ref.unit, ref.target or ""))
    return {"target_address": net.address} if net is not None and net.address else {}


def _http(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    http = facts.http.get(ref.service)
    return {} if http is None else {"health_url": http.url, "http_status": http.status}


def _datafs(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    fs = facts.datafs.get(ref.unit)
    if fs is None or fs.blind:
        return {}
    # A container that could not be looked into (stopped) leaves them empty: a hint
    # then shows the <data_dir> placeholder, not an empty quoted argument.
    found: dict[str, Any] = {
        k: v for k, v in (("data_dir", fs.path), ("data_mount", fs.mount)) if v
    }
    if fs.size_kb:
        found.update(
            data_used_percent=round(fs.used_percent, 1),
            data_free_mb=round(fs.avail_kb / 1024, 1),
        )
    return found


def _command(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    found = facts.commands.get((ref.check, ref.unit))
    return {} if found is None else {"exit_code": found.exit_code}


def _host(ref: CheckRef, facts: StackFacts) -> dict[str, Any]:
    found = facts.host
    if found is None or found.blind:
        return {}
    values: dict[str, Any] = {"data_root": found.data_root}
    if found.disk_size_kb:
        values.update(
            host_disk_used_percent=round(found.disk_used_percent, 1),
            host_disk_free_mb=round(found.disk_avail_kb / 1024, 1),
        )
    if found.mem_total_kb:
        values.update(
            host_mem_used_percent=round(found.mem_used_percent, 1),
            host_mem_available_mb=round(found.mem_available_kb / 1024, 1),
        )
    return values


# The live values each fact fixture offers a hint, by fixture name.
CONTEXT = {
    "container": _container,
    "stats": _stats,
    "logs": _logs,
    "pg": _pg,
    "net": _net,
    "http": _http,
    "datafs": _datafs,
    "command": _command,
    "host": _host,
}


def context_for(ref: CheckRef, check: Check, stack: Stack, facts: StackFacts) -> dict[str, Any]:
    """The live values a hint may quote: those of the facts the check read."""
    ctx: dict[str, Any] = {}
    for kind in check.facts:
        ctx.update(CONTEXT[kind](ref, facts))
    # Where to type the commands: the compose labels of the service's container.
    container = facts.containers.get(ref.unit) or facts.containers.get(ref.service)
    ctx["compose_cmd"] = (container.compose_cmd if container else "") or compose_command(
        {}, stack.compose_project, stack
    )
    ctx["docker_cmd"] = docker_command(stack)
    ctx["on_host"] = host.on_host(stack)
    if container is not None and container.name:
        ctx.setdefault("container", container.name)
    if ref.target is not None:
        ctx["target_port"] = stack.services[ref.target].port
    numbers = facts.replicas.get(ref.service)
    if numbers:
        # `up -d SERVICE` without it would scale a scaled service back to its file's count.
        ctx["scale"] = len(numbers)
    return {k: v for k, v in ctx.items() if v is not None}


def replica_set(ref: CheckRef, facts: StackFacts) -> dict[str, Any] | None:
    """For a check of one replica: how many the service runs and which are running."""
    numbers = facts.replicas.get(ref.service)
    if ref.replica is None or not numbers:
        return None
    running = []
    for number in numbers:
        found = facts.containers.get(f"{ref.service}#{number}")
        if found is not None and not found.blind and found.state == "running":
            running.append(number)
    return {"count": len(numbers), "numbers": list(numbers), "running": running}


def probe_duration(ref: CheckRef, check: Check, facts: StackFacts) -> float:
    """The time of the slowest probe the check read."""
    times = [facts.durations.get(n.key, 0.0) for n in needs_of(ref, check)]
    return round(max(times, default=0.0), 3)


def build(
    ref: CheckRef,
    check: Check,
    stack: Stack,
    facts: StackFacts | None,
    outcome: str,
    evidence: str | None,
    fix: Fix | None,
    secrets: list[str],
) -> Payload:
    payload: Payload = {
        **asdict(ref),
        "compose_project": stack.compose_project,
        "outcome": outcome,
        "evidence": evidence,
        "duration_s": probe_duration(ref, check, facts) if facts else 0.0,
        "context": context_for(ref, check, stack, facts) if facts else {},
        "definition": check.to_payload(fix),
    }
    replicas = replica_set(ref, facts) if facts else None
    if replicas is not None:
        payload["replicas"] = replicas
    redacted: Payload = redact(payload, secrets)
    # What the baseline compares (report/baseline.py), redacted there: its
    # environment digests must reach the reporter exactly as computed.
    redacted["observed"] = baseline.observe(ref, facts, secrets)
    return redacted
