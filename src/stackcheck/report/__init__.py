"""The remediation reporter: root causes first, live fix hints, every output.

The collector (stackcheck.plugin) calls three things:

- ``add_options(parser)`` from its ``pytest_addoption``;
- ``register(config, stacks, collector)`` when checks run;
- ``hints.decorate(report)`` from its ``pytest_runtest_makereport`` wrapper,
  after attaching ``report.stackcheck`` (the check's payload).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from stackcheck.config import Stack
from stackcheck.report import hints, notify, registry
from stackcheck.report.plugin import Reporter

__all__ = ["add_options", "hints", "notify", "register"]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcheck-report", "stackcheck remediation report")
    group.addoption(
        "--reports-dir",
        default="reports",
        metavar="DIR",
        help="where each stack's reports and incident clock go: summary-STACK.json, "
        "stackcheck-STACK.prom, incident-STACK.json and its note (default: reports)",
    )
    group.addoption(
        "--summary-json",
        metavar="PATH",
        help="also write the summary JSON of the whole run (all stacks) here; '-' for "
        "standard output (pytest's own output then goes to standard error)",
    )
    group.addoption(
        "--incident-note",
        metavar="PATH",
        help="Markdown incident note (one stack only; default: REPORTS_DIR/incident-STACK-<opened>.md)",
    )
    group.addoption(
        "--prom-file",
        metavar="PATH",
        help="also write the Prometheus textfile of the whole run (all stacks) here",
    )
    notify.add_options(group)


def register(config: pytest.Config, stacks: Sequence[Stack], collector: Any) -> None:
    """Activate the reporter for this session's stacks (in every xdist process)."""
    registry.remember(stacks)
    if len(stacks) > 1 and config.getoption("incident_note"):
        raise pytest.UsageError("--incident-note names one file: use it with one --stack only")
    manager = config.pluginmanager
    if not hasattr(config, "workerinput") and not manager.has_plugin("stackcheck-report"):
        # Only the controller sees every report; only it writes files.
        manager.register(Reporter(config, stacks, collector), "stackcheck-report")
