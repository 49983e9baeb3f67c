"""Live fix hints: the runbook step of a failed check, its commands filled in.

Nothing here runs a command; the hint only prints them, each with its safety class.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from string import Template
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from stackcheck.config import Stack
from stackcheck.definition import Check, Safety
from stackcheck.model import CheckFailed, CheckRef, Payload
from stackcheck.report import graph, registry
from stackcheck.report.redact import redact
from stackcheck.runbook import REPLICA_TEMPLATES

# Context values that are not worth quoting beside the evidence.
_UNQUOTED = frozenset({"compose_cmd", "docker_cmd", "on_host", "container_id", "log_lines"})
# Docker's "never": a container that has not stopped yet has this finished_at.
_ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_LOG_LINES = 10
# How pytest names a check's own verdict in a failure report.
_VERDICT = f"{CheckFailed.__module__}.{CheckFailed.__qualname__}:"


def ref_of(payload: Payload) -> CheckRef:
    replica = payload.get("replica")
    return CheckRef(
        payload["stack"],
        payload["check"],
        payload["service"],
        payload.get("target"),
        replica if isinstance(replica, int) and not isinstance(replica, bool) else None,
    )


@dataclass(frozen=True)
class Hint:
    key: str
    check: Check  # with the fix the verdict chose
    evidence: str | None
    commands: tuple[tuple[Safety, str], ...]
    facts: tuple[tuple[str, str], ...]
    log_lines: tuple[str, ...]
    # For a check of one replica: which replicas fail it and how many serve.
    replicas: str | None = None

    @property
    def headline(self) -> str:
        fix = self.check.fix.step
        return f"{self.key}: {fix.title} ({fix.link})"

    def command_lines(self, only: Safety | None = None) -> list[str]:
        """One line per command, with its safety class; ``only`` keeps just that class."""
        return [
            f"  [{safety.value}]{' ' * (12 - len(safety.value))}{cmd}"
            for safety, cmd in self.commands
            if only is None or safety is only
        ]

    def detail_lines(self) -> list[str]:
        """Evidence, live values, log lines, then the diagnosis step."""
        lines = []
        if self.evidence:
            first, *rest = self.evidence.splitlines() or [""]
            lines.append(f"evidence: {first}")
            lines.extend(f"  {line}" for line in rest)
        if self.replicas:
            lines.append(f"replicas: {self.replicas}")
        if self.facts:
            lines.append("live: " + ", ".join(f"{k}={v}" for k, v in self.facts))
        if self.log_lines:
            lines.append("log lines:")
            lines.extend(f"  | {line}" for line in self.log_lines)
        step = self.check.step
        lines.append(
            f"check: {self.check.title}; diagnosis step {step.title} ({step.link}). "
            "Nothing was run: type the commands yourself."
        )
        return lines

    def text(self) -> str:
        return "\n".join([self.headline, *self.command_lines(), *self.detail_lines()])

    def consequence_text(self, root: str) -> str:
        """A consequence's report: which root cause to fix first, and only read-only commands."""
        lines = [f"consequence of {root} — fix that first"]
        if self.evidence:
            lines.append(f"evidence: {self.evidence.splitlines()[0]}")
        if self.replicas:
            lines.append(f"replicas: {self.replicas}")
        return "\n".join([*lines, *self.command_lines(only=Safety.READ_ONLY)])


def _from_stack_file(stack: Stack, ref: CheckRef) -> dict[str, str]:
    """What the stack file says, for values the probe did not report."""
    found: dict[str, str] = {}
    service = stack.services.get(ref.service)
    if service is not None and service.health_url:
        found["health_url"] = service.health_url
    if service is not None and service.postgres_via == "exec":
        found.update(pg_user=service.postgres_user or "", pg_dbname=service.postgres_db or "")
    elif service is not None and service.postgres_dsn:
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


def _for_replicas(template: str, ref: CheckRef, context: dict[str, Any]) -> str:
    """A command template as it must read for a scaled service, or one replica of it.

    ``up -d SERVICE`` keeps the service's scale (without ``--scale`` compose
    would remove the other replicas); a restart or removal of one replica acts on
    its own container, not on every replica.
    """
    if ref.replica is not None:
        template = REPLICA_TEMPLATES.get(template, template)
    scale = context.get("scale")
    scaled = isinstance(scale, int) and not isinstance(scale, bool) and scale > 1
    if scaled and "$target" not in template:
        template = template.replace("$compose up -d ", f"$compose up -d --scale $service={scale} ")
    return template


def render(payload: Payload, key: str | None = None) -> Hint:
    """The hint for one check's payload; every string in it is already redacted.

    ``key`` names the check in the output (default ``service:check``). Every
    value filled into a command is shell-quoted: names, URLs and users come from
    files and servers that may be hostile, and the commands get pasted.
    """
    ref = ref_of(payload)
    check = Check.from_payload(payload["definition"])
    context: dict[str, Any] = payload.get("context") or {}
    stack = registry.stack(ref.stack)
    dependents = graph.dependents(stack, ref.service) if stack else []
    raw = _from_stack_file(stack, ref) if stack else {}
    raw.update({k: str(v) for k, v in context.items() if v is not None and not isinstance(v, list)})
    raw.update(service=ref.service, **({"target": ref.target} if ref.target else {}))
    values = _Values({k: shlex.quote(v) for k, v in raw.items()})
    values.update(
        compose=str(
            context.get("compose_cmd")
            or shlex.join(["docker", "compose", "-p", str(payload["compose_project"])])
        ),
        docker=str(context.get("docker_cmd") or "docker"),
        # Empty on the engine's own machine, else `ssh HOST -- `: host commands run there.
        on_host=str(context.get("on_host") or ""),
        dependents=" ".join(shlex.quote(d) for d in dependents),
    )
    commands = tuple(
        (
            c.safety,
            redact(Template(_for_replicas(c.template, ref, context)).safe_substitute(values)),
        )
        for c in check.fix.commands
        # "restart the services that use it" means nothing when none do.
        if dependents or "$dependents" not in c.template
    )
    facts = tuple(
        (name, redact(str(value)))
        for name, value in context.items()
        if name not in _UNQUOTED and value is not None and value != _ZERO_TIME
    )
    logs = [redact(str(line)) for line in context.get("log_lines") or ()]
    evidence = payload.get("evidence")
    return Hint(
        key=key or ref.key,
        check=check,
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
    if payload.get("outcome") == "error" and not payload.get("crashed"):
        # Could not check: the reason says how to restore sight; no traceback.
        report.longrepr = f"could not check {ref_of(payload).key}: {payload.get('evidence')}"
        return
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
