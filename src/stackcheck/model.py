"""Names shared by the collector, the checks and the reporter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from stackcheck.definition import Fix

# The "service" of a host check: '@' is in no compose service name, so it never
# collides with one; test ids read `test_host_disk[@host]`.
HOST = "@host"


@dataclass(frozen=True)
class CheckRef:
    """Which check ran on what: ``target`` is the ``to`` service of an edge check.

    ``replica`` is the container's number (compose's ``container-number`` label)
    when the service runs several containers and the check reads one of them;
    None for a one-container service, and for checks of the service as a whole
    (PostgreSQL, HTTP), which reach it through its DSN or URL.
    """

    stack: str
    check: str
    service: str
    target: str | None = None
    replica: int | None = None

    @property
    def unit(self) -> str:
        """``backend``, or ``backend#2`` for one replica of a scaled service."""
        return unit_name(self.service, self.replica)

    @property
    def where(self) -> str:
        return f"{self.unit}->{self.target}" if self.target else self.unit

    @property
    def key(self) -> str:
        """The ``service:check`` name the reports use (``from->to:check`` for edges)."""
        return f"{self.where}:{self.check}"


def unit_name(service: str, replica: int | None) -> str:
    """How a service, or one replica of it, is named in test ids, keys and facts."""
    return service if replica is None else f"{service}#{replica}"


# Set on every check item at collection.
REF_KEY = pytest.StashKey[CheckRef]()

# Attached to every check's TestReport as ``report.stackcheck``: builtin types only,
# so that it crosses from xdist workers to the controller unchanged.
Payload = dict[str, Any]


class CheckFailed(AssertionError):
    """A check's verdict: the stack is wrong. The message is the evidence, shown as is."""

    def __init__(self, evidence: str, fix: Fix | None = None) -> None:
        super().__init__(evidence)
        self.fix = fix


class CouldNotCheck(Exception):
    """The checker's own way in failed (engine unreachable, tool missing...).

    Raised by the fact fixtures, so pytest reports it as an error in setup
    (JUnit ``<error>``), never as a failure of the stack.
    """


def expect(condition: object, evidence: str, fix: Fix | None = None) -> None:
    """Fail the current check with ``evidence`` unless ``condition`` holds.

    ``fix`` names another of the check's fixes (``other_fixes``) when this
    failure calls for it, e.g. an OOM kill for the memory step.
    """
    if not condition:
        _fail(evidence, fix)


def _fail(evidence: str, fix: Fix | None) -> NoReturn:
    __tracebackhide__ = True
    raise CheckFailed(evidence, fix)
