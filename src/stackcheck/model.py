"""Names shared by the collector, the checks and the reporter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

# The twelve checks, in the runbook's diagnosis order.
CHECKS = (
    "container_running",
    "container_stable",
    "container_healthy",
    "logs_clean",
    "memory_headroom",
    "cpu_headroom",
    "pg_ready",
    "pg_connections",
    "net_resolve",
    "net_ping",
    "net_port",
    "http_health",
)
NETWORK_CHECKS = ("net_resolve", "net_ping", "net_port")


@dataclass(frozen=True)
class CheckRef:
    """Which check ran on what: ``target`` is the ``to`` service of a network check."""

    stack: str
    check: str
    service: str
    target: str | None = None

    @property
    def key(self) -> str:
        """The ``service:check`` name the reports use (``from->to:check`` for edges)."""
        where = f"{self.service}->{self.target}" if self.target else self.service
        return f"{where}:{self.check}"


# Set on every check item at collection.
REF_KEY = pytest.StashKey[CheckRef]()

# Attached to every check's TestReport as ``report.stackcheck``: builtin types only,
# so that it crosses from xdist workers to the controller unchanged.
Payload = dict[str, Any]


class CheckFailed(AssertionError):
    """A check's verdict: the message is the evidence, shown as is."""


def expect(condition: object, evidence: str) -> None:
    """Fail the current check with ``evidence`` unless ``condition`` holds."""
    if not condition:
        _fail(evidence)


def _fail(evidence: str) -> NoReturn:
    __tracebackhide__ = True
    raise CheckFailed(evidence)
