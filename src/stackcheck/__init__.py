"""stackcheck: the "API Service Down" runbook as a pytest health-check suite.

A check is a test function that asserts on facts, declared with ``@check``::

    from stackcheck import Command, Fix, Layer, Safety, Step, check, expect

See README.md, "Adding a check".
"""

from stackcheck import _lazy  # noqa: F401  (first: before anything imports docker)
from stackcheck.definition import Check, Command, Fix, Layer, Safety, Step, check
from stackcheck.model import CheckFailed, CouldNotCheck, expect

__all__ = [
    "Check",
    "CheckFailed",
    "Command",
    "CouldNotCheck",
    "Fix",
    "Layer",
    "Safety",
    "Step",
    "check",
    "expect",
]
