"""The reporter's pytest hooks: alert markers everywhere, outputs on the controller."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stackcheck.config import Stack
from stackcheck.model import REF_KEY, CheckRef
from stackcheck.report import escalation, metrics, note, summary, terminal
from stackcheck.report.catalogue import CATALOGUE
from stackcheck.report.escalation import Incident
from stackcheck.report.results import Results
from stackcheck.report.run import Run, build

STATE_FILE = "incident.json"


class AlertMarkers:
    """Marks each check with the alerts that call for it, so ``-m ALERT`` selects."""

    # Before the mark plugin's own modifyitems deselects by -m.
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # The collector stashes each item's ref as it is collected, before this.
        for item in items:
            ref = item.stash.get(REF_KEY, None)
            if isinstance(ref, CheckRef):  # not an empty parameter set's placeholder
                for alert in CATALOGUE[ref.check].alerts:
                    item.add_marker(alert)


class Reporter:
    """Runs on the controller only: it alone sees every report and writes files."""

    def __init__(self, config: pytest.Config, stacks: Sequence[Stack]) -> None:
        self.config = config
        self.stacks = list(stacks)
        self.results = Results()
        self.started_at = datetime.now(UTC)
        self.run: Run | None = None
        self.incident: Incident | None = None
        self.outputs: list[Path] = []

    def _path(self, option: str) -> Path | None:
        """An option's path, relative to where pytest was started."""
        value = self.config.getoption(option)
        return Path(self.config.invocation_params.dir, str(value)) if value else None

    def _reports_dir(self) -> Path:
        path = self._path("reports_dir")
        assert path is not None  # the option has a default
        return path

    def _partial(self) -> bool:
        return any(self.config.getoption(o) for o in ("markexpr", "keyword", "deselect"))

    def pytest_sessionstart(self) -> None:
        self.started_at = datetime.now(UTC)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    # Before the terminal reporter's summary, which runs in its sessionfinish wrapper.
    def pytest_sessionfinish(self) -> None:
        results = self.results.all()
        if not results:
            return  # nothing ran (collect-only, all deselected): no verdict to report
        run = build(results, self.stacks, self.started_at, datetime.now(UTC), self._partial())
        reports = self._reports_dir()
        incident = escalation.advance(reports / STATE_FILE, run, self._path("incident_note"))
        json_path = self._path("summary_json") or reports / "summary.json"
        prom_path = self._path("prom_file") or reports / "stackcheck.prom"
        summary.write(json_path, run, incident)
        metrics.write(prom_path, run)
        self.outputs = [json_path, prom_path]
        if incident is not None:
            note_path = Path(incident.note)
            note.write(note_path, incident, run)
            self.outputs.append(note_path)
        self.run, self.incident = run, incident

    # Outermost wrapper: prints after pytest's FAILURES and short test summary.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> Generator[None]:
        result = yield
        if self.run is not None:
            terminal.write(terminalreporter, self.run, self.incident, self.outputs)
        return result
