"""What each check's report carries to the reporter: builtins only, passwords removed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from stackcheck.config import Stack
from stackcheck.model import CheckRef, Payload
from stackcheck.probes.facts import StackFacts
from stackcheck.probes.gather import PROBES_FOR_CHECK, probe_key
from stackcheck.redact import redact


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


def context_for(ref: CheckRef, stack: Stack, facts: StackFacts) -> dict[str, Any]:
    """The live values a hint may quote for this check."""
    ctx: dict[str, Any] = {}
    container = facts.containers.get(ref.service)
    if container is not None:
        ctx.update(
            container=container.name or None,
            container_id=container.id[:12] or None,
            state=container.state,
            exit_code=container.exit_code,
            oom_killed=container.oom_killed or container.recent_ooms > 0,
            restart_count=container.restart_count,
            recent_restarts=container.recent_dies,
            started_at=container.started_at,
            finished_at=container.finished_at,
            health_status=container.health_status,
            compose_cmd=container.compose_cmd or None,
        )
    logs = facts.logs.get(ref.service)
    if logs is not None and logs.matches:
        ctx["log_lines"] = list(logs.matches)
    stats = facts.stats.get(ref.service)
    if stats is not None and stats.error is None and stats.mem_limit:
        ctx.update(
            mem_usage_mb=_mib(stats.mem_usage),
            mem_limit_mb=_mib(stats.mem_limit),
            mem_percent=round(100 * stats.mem_usage / stats.mem_limit, 1),
            cpu_percent=round(stats.cpu_percent, 1),
        )
    pg = facts.pg.get(ref.service)
    if pg is not None:
        ctx.update(
            pg_outcome=pg.ping,
            connections_in_use=pg.in_use,
            connections_usable=pg.usable,
            max_connections=pg.max_connections,
            pg_user=pg.user,
            pg_host=pg.host,
            pg_port=pg.port,
            pg_dbname=pg.dbname,
        )
    http = facts.http.get(ref.service)
    if http is not None:
        ctx.update(health_url=http.url, http_status=http.status)
    if ref.target is not None:
        ctx["target_port"] = stack.services[ref.target].port
        net = facts.net.get((ref.service, ref.target))
        if net is not None and net.address:
            ctx["target_address"] = net.address
    return {k: v for k, v in ctx.items() if v is not None}


def probe_duration(ref: CheckRef, facts: StackFacts) -> float:
    key = probe_key(PROBES_FOR_CHECK[ref.check], ref.service, ref.target)
    return round(facts.durations.get(key, 0.0), 3)


def build(
    ref: CheckRef,
    stack: Stack,
    facts: StackFacts | None,
    evidence: str | None,
    secrets: list[str],
) -> Payload:
    payload: Payload = {
        **asdict(ref),
        "compose_project": stack.compose_project,
        "evidence": evidence,
        "duration_s": probe_duration(ref, facts) if facts else 0.0,
        "context": context_for(ref, stack, facts) if facts else {},
    }
    redacted: Payload = redact(payload, secrets)
    return redacted
