"""The Prometheus textfile, for node_exporter's textfile collector."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from stackcheck.report.escalation import Incident
from stackcheck.report.files import write_atomic
from stackcheck.report.run import HEALTHY, UNHEALTHY, UNKNOWN, Run

# target is "" off network checks; replica is the container number of one
# replica of a scaled service ("" for a check of a service as a whole).
LABELS = ("stack", "service", "check", "target", "replica")


def write(path: Path, run: Run, incidents: Mapping[str, Incident | None] | None = None) -> None:
    """Write the run's gauges, atomically (node_exporter may read at any moment).

    ``incidents`` (by stack name) adds when each open incident opened, which the
    alerting rules turn into the runbook's escalation page.
    """
    registry = CollectorRegistry()
    success = Gauge(
        "stackcheck_check_success",
        "1 if the check passed, 0 if it failed (skipped and could-not-check checks are absent)",
        LABELS,
        registry=registry,
    )
    blind = Gauge(
        "stackcheck_check_blind",
        "1 for a check that could not check (the checker could not see): no verdict",
        LABELS,
        registry=registry,
    )
    status = Gauge(
        "stackcheck_stack_status",
        "1 for the stack's status (healthy, unhealthy, unknown), 0 for the others",
        ["stack", "status"],
        registry=registry,
    )
    duration = Gauge(
        "stackcheck_check_duration_seconds",
        "Time the check's probe took",
        LABELS,
        registry=registry,
    )
    healthy = Gauge(
        "stackcheck_stack_healthy",
        "1 if every check of the stack passed; 0 if one failed or could not check",
        ["stack"],
        registry=registry,
    )
    roots = Gauge(
        "stackcheck_root_causes", "Failures not explained by another", ["stack"], registry=registry
    )
    last_run = Gauge(
        "stackcheck_last_run_timestamp_seconds",
        "Unix time the run started",
        ["stack"],
        registry=registry,
    )
    opened = Gauge(
        "stackcheck_incident_opened_timestamp_seconds",
        "Unix time the stack's open incident opened (absent when none is open)",
        ["stack"],
        registry=registry,
    )
    for stack_run in run.stacks:
        name = stack_run.stack.name
        for row in stack_run.rows:
            if row.result.outcome == "skipped":
                continue
            ref = row.result.ref
            replica = "" if ref.replica is None else str(ref.replica)
            labels = (name, ref.service, ref.check, ref.target or "", replica)
            if row.result.blind:
                blind.labels(*labels).set(1)
            else:
                success.labels(*labels).set(0 if row.result.failing else 1)
            duration.labels(*labels).set(row.result.duration_s)
        healthy.labels(name).set(1 if stack_run.healthy else 0)
        for value in (HEALTHY, UNHEALTHY, UNKNOWN):
            status.labels(name, value).set(1 if stack_run.status == value else 0)
        roots.labels(name).set(len(stack_run.roots))
        last_run.labels(name).set(run.started_at.timestamp())
        incident = (incidents or {}).get(name)
        if incident is not None and incident.closed_at is None:
            opened.labels(name).set(incident.opened_at.timestamp())
    write_atomic(path, generate_latest(registry).decode("utf-8"))
