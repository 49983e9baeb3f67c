"""stackcheck: the "API Service Down" runbook as a pytest health-check suite."""

from stackcheck.model import CheckFailed, expect

__all__ = ["CheckFailed", "expect"]
