"""Live fix hints: the runbook step of a failed check, its commands filled in.

Nothing here runs a command; the hint only prints them, each with its safety class.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from stackcheck.config import Stack
from stackcheck.model import CheckFailed, CheckRef, Payload
from stackcheck.report import graph, registry
from stackcheck.report.catalogue import CATALOGUE, RUNBOOK, STEPS, Entry, Safety
from stackcheck.report.redact import redact

# The live values worth quoting beside each check's evidence, in this order.
_CONTAINER = (
    "container",
    "state",
    "exit_code",
    "oom_killed",
    "restart_count",
    "recent_restarts",
    "started_at",
    "finished_at",
    "health_status",
)
_STATS = ("container", "mem_usage_mb", "mem_limit_mb", "mem_percent", "cpu_percent")
_PG = (
    "pg_outcome",
    "connections_in_use",
    "connections_usable",
    "max_connections",
    "pg_user",
    "pg_host",
    "pg_port",
    "pg_dbname",
)
_NET = ("container", "target_address", "target_port")
FACTS = {
    "container_running": _CONTAINER,
    "container_stable": _CONTAINER,
    "container_healthy": ("container", "state", "health_status"),
    "logs_clean": ("container", "state", "restart_count"),
    "memory_headroom": _STATS,
    "cpu_headroom": _STATS,
    "pg_ready": _PG,
    "pg_connections": _PG,
    "net_resolve": _NET,
    "net_ping": _NET,
    "net_port": _NET,
    "http_health": ("health_url", "http_status"),
}
# Docker's "never": a container that has not stopped yet has this finished_at.
_ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_LOG_LINES = 10
# How pytest names a check's own verdict in a failure report.
_VERDICT = f"{CheckFailed.__module__}.{CheckFailed.__qualname__}:"


def ref_of(payload: Payload) -> CheckRef:
    return CheckRef(payload["stack"], payload["check"], payload["service"], payload.get("target"))


def link(anchor: str) -> str:
    return f"{RUNBOOK}#{anchor}"


@dataclass(frozen=True)
class Hint:
    key: str
    entry: Entry
    evidence: str | None
    commands: tuple[tuple[Safety, str], ...]
    facts: tuple[tuple[str, str], ...]
    log_lines: tuple[str, ...]

    @property
    def headline(self) -> str:
        fix = self.entry.fix
        return f"{self.key}: {STEPS[fix]} ({link(fix)})"

    def command_lines(self) -> list[str]:
        return [
            f"  [{safety.value}]{' ' * (12 - len(safety.value))}{cmd}"
            for safety, cmd in self.commands
        ]

    def detail_lines(self) -> list[str]:
        """Evidence, live values, log lines, then the diagnosis step."""
        lines = []
        if self.evidence:
            first, *rest = self.evidence.splitlines() or [""]
            lines.append(f"evidence: {first}")
            lines.extend(f"  {line}" for line in rest)
        if self.facts:
            lines.append("live: " + ", ".join(f"{k}={v}" for k, v in self.facts))
        if self.log_lines:
            lines.append("log lines:")
            lines.extend(f"  | {line}" for line in self.log_lines)
        step = self.entry.step
        lines.append(
            f"check: {self.entry.title}; diagnosis step {STEPS[step]} ({link(step)}). "
            "Nothing was run: type the commands yourself."
        )
        return lines

    def text(self) -> str:
        return "\n".join([self.headline, *self.command_lines(), *self.detail_lines()])


def _from_stack_file(stack: Stack, ref: CheckRef) -> dict[str, str]:
    """What the stack file says, for values the probe did not report."""
    found: dict[str, str] = {}
    service = stack.services.get(ref.service)
    if service is not None and service.health_url:
        found["health_url"] = service.health_url
    if service is not None and service.postgres_dsn:
        info = conninfo_to_dict(service.postgres_dsn)  # the password is never used
        found.update(
            {
                k: str(info[v])
                for k, v in (("pg_user", "user"), ("pg_dbname", "dbname"))
                if info.get(v)
            }
        )
    target = stack.services.get(ref.target) if ref.target else None
    if target is not None and target.port:
        found["target_port"] = str(target.port)
    return found


class _Values(dict[str, str]):
    # A value the probe could not learn stays visible as a placeholder to fill in.
    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def render(payload: Payload, key: str | None = None) -> Hint:
    """The hint for one check's payload; every string in it is already redacted.

    ``key`` names the check in the output (default ``service:check``).
    """
    ref = ref_of(payload)
    entry = CATALOGUE[ref.check]
    context: dict[str, Any] = payload.get("context") or {}
    stack = registry.stack(ref.stack)
    dependents = graph.dependents(stack, ref.service) if stack else []
    docker_host = stack.docker_host if stack else None
    values = _Values(_from_stack_file(stack, ref) if stack else {})
    values.update(
        {k: str(v) for k, v in context.items() if v is not None and not isinstance(v, list)}
    )
    values.update(
        compose=context.get("compose_cmd") or f"docker compose -p {payload['compose_project']}",
        docker=f"DOCKER_HOST={docker_host} docker" if docker_host else "docker",
        service=ref.service,
        dependents=" ".join(dependents),
    )
    if ref.target:
        values["target"] = ref.target
    commands = tuple(
        (c.safety, redact(Template(c.template).substitute(values)))
        for c in entry.commands
        # "restart the services that use it" means nothing when none do.
        if dependents or "$dependents" not in c.template
    )
    facts = tuple(
        (name, redact(str(context[name])))
        for name in FACTS[ref.check]
        if context.get(name) is not None and context[name] != _ZERO_TIME
    )
    logs = [redact(str(line)) for line in context.get("log_lines") or ()]
    evidence = payload.get("evidence")
    return Hint(
        key=key or ref.key,
        entry=entry,
        evidence=redact(evidence) if evidence else None,
        commands=commands,
        facts=facts,
        log_lines=tuple(logs[-MAX_LOG_LINES:]),
    )


def _crash_message(report: pytest.TestReport) -> str | None:
    """The one-line reason pytest keeps for a failure or error, if any."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    lines = str(report.longrepr or "").strip().splitlines()
    # A report already turned into text: pytest marks the exception lines "E ".
    raised = [line[1:].strip() for line in lines if line.startswith("E ")]
    found = raised or lines
    return found[-1] if found else None


def decorate(report: pytest.TestReport) -> None:
    """Rewrite a check's failed report: the hint first, then the evidence.

    The collector calls this for every phase's report of a check item, after
    attaching ``report.stackcheck``. JUnit's ``message`` attribute, the FAILURES
    section and the short summary line all read ``report.longrepr``.
    """
    payload = getattr(report, "stackcheck", None)
    if not isinstance(payload, dict):
        return
    report.sections = [(title, redact(text)) for title, text in report.sections]
    if not report.failed or report.longrepr is None:
        return
    if payload.get("evidence") is None:
        # Read while pytest's structured report is still there, for every output.
        crash = _crash_message(report)
        payload["evidence"] = redact(crash) if crash else None
    original = str(report.longrepr)
    if report.when != "call":
        # A setup or teardown error keeps pytest's own report, passwords hidden.
        hidden = redact(original)
        if hidden != original:
            report.longrepr = hidden
        return
    text = render(payload).text()
    if _VERDICT not in original:
        # Not a verdict but a crashed probe or check: its fixer needs the traceback.
        text += "\n\ntraceback:\n" + redact(original)
    report.longrepr = text
