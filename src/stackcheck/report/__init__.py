"""The remediation reporter: root causes first, live fix hints, every output.

The collector (stackcheck.plugin) calls three things:

- ``add_options(parser)`` from its ``pytest_addoption``;
- ``register(config, stacks)`` from its ``pytest_configure`` when checks run;
- ``hints.decorate(report)`` from its ``pytest_runtest_makereport`` wrapper,
  after attaching ``report.stackcheck`` (the check's payload).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from stackcheck.config import Stack
from stackcheck.report import registry
from stackcheck.report.catalogue import ALERTS
from stackcheck.report.hints import decorate
from stackcheck.report.plugin import AlertMarkers, Reporter

__all__ = ["add_options", "decorate", "register"]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcheck-report", "stackcheck remediation report")
    group.addoption(
        "--reports-dir",
        default="reports",
        metavar="DIR",
        help="where reports and the incident clock go (default: reports)",
    )
    group.addoption(
        "--summary-json",
        metavar="PATH",
        help="summary JSON of the run (default: REPORTS_DIR/summary.json)",
    )
    group.addoption(
        "--incident-note",
        metavar="PATH",
        help="Markdown incident note (default: REPORTS_DIR/incident-<opened>.md)",
    )
    group.addoption(
        "--prom-file",
        metavar="PATH",
        help="Prometheus textfile for node_exporter (default: REPORTS_DIR/stackcheck.prom)",
    )


def register(config: pytest.Config, stacks: Sequence[Stack]) -> None:
    """Activate the reporter for this session's stacks (in every xdist process)."""
    registry.remember(stacks)
    for marker, description in ALERTS.items():
        config.addinivalue_line("markers", f"{marker}: {description}")
    manager = config.pluginmanager
    if not manager.has_plugin("stackcheck-alerts"):
        # Workers collect and deselect by -m too, so they need the markers.
        manager.register(AlertMarkers(), "stackcheck-alerts")
    if not hasattr(config, "workerinput") and not manager.has_plugin("stackcheck-report"):
        # Only the controller sees every report; only it writes files.
        manager.register(Reporter(config, stacks), "stackcheck-report")
