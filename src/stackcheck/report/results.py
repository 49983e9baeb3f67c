"""One verdict per check item, from the reports of its setup, call and teardown."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from stackcheck.definition import Check
from stackcheck.model import CheckRef, Payload
from stackcheck.report.hints import ref_of
from stackcheck.report.redact import redact

# When phases disagree, the stronger outcome is the check's: a failed verdict
# outranks a teardown error, which outranks a pass.
_STRENGTH = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}


@dataclass(frozen=True)
class CheckResult:
    ref: CheckRef
    check: Check  # as the payload carried it, with the fix its verdict chose
    nodeid: str
    # passed | failed (the stack is wrong) | error (could not check) | skipped
    outcome: str
    evidence: str | None  # redacted
    duration_s: float
    payload: Payload
    report: pytest.TestReport  # the controller's own, as pytest's outputs print it

    @property
    def failing(self) -> bool:
        """The stack is wrong. A blind spot ("error") is not: it says nothing of the stack."""
        return self.outcome == "failed"

    @property
    def blind(self) -> bool:
        return self.outcome == "error"


def _outcome(report: pytest.TestReport, payload: Payload) -> str:
    if report.when == "teardown" and report.failed:
        return "error"  # a fixture's teardown broke: the checker's problem
    outcome = str(payload.get("outcome") or report.outcome)
    return outcome if outcome in _STRENGTH else "error"


class Results:
    """Collects the reports the controller sees (from xdist workers too)."""

    def __init__(self) -> None:
        self._by_nodeid: dict[str, CheckResult] = {}

    def add(self, report: pytest.TestReport) -> None:
        payload = getattr(report, "stackcheck", None)
        if not isinstance(payload, dict):
            return  # not a check
        outcome = _outcome(report, payload)
        previous = self._by_nodeid.get(report.nodeid)
        if previous is not None:
            stronger = _STRENGTH[outcome] > _STRENGTH[previous.outcome]
            # On a tie the call phase speaks: its payload has the probe's findings.
            if not stronger and not (outcome == previous.outcome and report.when == "call"):
                return
        # decorate() has put the crash line there when the collector had none.
        evidence = payload.get("evidence")
        self._by_nodeid[report.nodeid] = CheckResult(
            ref=ref_of(payload),
            check=Check.from_payload(payload["definition"]),
            nodeid=report.nodeid,
            outcome=outcome,
            evidence=redact(evidence) if evidence else None,
            duration_s=float(payload.get("duration_s") or report.duration),
            payload=payload,
            report=report,
        )

    def all(self) -> list[CheckResult]:
        return list(self._by_nodeid.values())
