"""The reporter's pytest hooks, on the controller only: it alone sees every report.

At the end of the session, before pytest's own summary: the causal analysis,
then each failing report's text is rewritten for its role (a root cause carries
its fix; a consequence says which root cause to fix first and carries no
mutating command), the reports are written per stack, and the exit status says
unhealthy, unknown or healthy. The JUnit file, which pytest writes as reports
arrive, is brought into line once pytest has written it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stackcheck.config import Stack
from stackcheck.report import baseline, escalation, junit, metrics, note, summary, terminal
from stackcheck.report.escalation import Incident
from stackcheck.report.files import WriteFailed, slug
from stackcheck.report.notify import Notifier
from stackcheck.report.results import Results
from stackcheck.report.run import UNHEALTHY, UNKNOWN, Run, StackRun, build

# Exit status of a run in which no check failed but some could not check: none
# of pytest's own (0 passed, 1 failed, 2 interrupted, 3 internal error, 4 usage
# error, 5 no tests), so a scheduler tells blindness from an outage.
EXIT_UNKNOWN = 6


class Reporter:
    def __init__(self, config: pytest.Config, stacks: Sequence[Stack], collector: Any) -> None:
        self.config = config
        self.stacks = list(stacks)
        self.collector = collector  # stackcheck.plugin.Collector: what was collected
        self.results = Results()
        self.started_at = datetime.now(UTC)
        self.run: Run | None = None
        self.incidents: dict[str, Incident | None] = {}
        self.outputs: list[Path] = []
        self.problems: list[str] = []
        self.clock_unknown: set[str] = set()  # stacks whose incident clock was not moved
        self.expected: int | None = None  # check items collected (xdist: by the workers)
        self.notifier = Notifier()
        # Set by --watch: the last complete round, already written; the session reports it.
        self.final: Run | None = None
        self.comparisons: dict[str, baseline.Comparison] = {}  # by stack name
        # --summary-json -: the JSON is the only thing on standard output, so pytest's
        # terminal report is moved to standard error, and the JSON comes last.
        self.to_stdout = config.getoption("summary_json") == "-"
        self.stdout_text: str | None = None
        if self.to_stdout:
            self._terminal_to_stderr(config.pluginmanager.get_plugin("terminalreporter"))

    def _terminal_to_stderr(self, reporter: Any) -> None:
        """Put pytest's terminal reporter on standard error (public API only: one
        ``pytest.TerminalReporter`` replaces the other under the same name)."""
        if not isinstance(reporter, pytest.TerminalReporter):
            return  # not registered yet: pytest_plugin_registered will see it
        manager = self.config.pluginmanager
        if getattr(reporter, "stackcheck_on_stderr", False):
            return
        manager.unregister(reporter)
        moved = pytest.TerminalReporter(self.config, sys.stderr)
        moved.stackcheck_on_stderr = True  # type: ignore[attr-defined]
        manager.register(moved, "terminalreporter")

    def pytest_plugin_registered(self, plugin: object, manager: pytest.PytestPluginManager) -> None:
        if self.to_stdout and manager.get_name(plugin) == "terminalreporter":
            self._terminal_to_stderr(plugin)

    def _path(self, option: str) -> Path | None:
        """An option's path, relative to where pytest was started."""
        value = self.config.getoption(option)
        return Path(self.config.invocation_params.dir, str(value)) if value else None

    def pytest_sessionstart(self) -> None:
        self.started_at = datetime.now(UTC)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.expected = len(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    def _partial(self, session: pytest.Session) -> bool:
        """Whether some check of the stacks did not run to a verdict."""
        config = self.config
        if any(config.getoption(o, None) for o in ("markexpr", "keyword", "deselect", "lf")):
            return True
        if self.collector.deselected_by_others or not self.collector.whole_directories():
            return True
        expected = self.expected if self.expected is not None else len(self.collector.collected)
        # -x, --maxfail, Ctrl-C: some collected check has no verdict.
        return len(self.results.all()) < expected or bool(session.shouldstop or session.shouldfail)

    # Before the terminal reporter's summary, which runs in its sessionfinish wrapper.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.final is not None:
            run = self.final
        else:
            found = self.round(session)
            if found is None:
                return  # nothing ran (collect-only, all deselected): no verdict to report
            run = found
        self.run = run
        _relabel(run)
        if run.status == UNKNOWN and not run.partial and session.exitstatus in (0, 1):
            session.exitstatus = EXIT_UNKNOWN
        elif run.status == UNHEALTHY and session.exitstatus == 0:
            session.exitstatus = 1

    def round(self, session: pytest.Session, started_at: datetime | None = None) -> Run | None:
        """Judge the results so far as one run and write its reports (``--watch``: a round,
        ``started_at`` its start)."""
        results = self.results.all()
        if not results:
            return None
        started = started_at or self.started_at
        run = build(results, self.stacks, started, datetime.now(UTC), self._partial(session))
        self.outputs, self.problems, self.clock_unknown = [], [], set()
        self.incidents = {}
        self._write(run)
        return run

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        self._junit()
        # After the report: pages still in flight may finish, within a bound.
        self.notifier.wait()
        for text, _ in self.notifier.lines(only_new=True):  # those in flight at the summary
            sys.stderr.write(f"stackcheck: notify: {text}\n")
        if self.stdout_text is not None:
            # A reader that went away (`| head`) costs nothing but the JSON.
            with contextlib.suppress(OSError):
                sys.stdout.write(self.stdout_text)
                sys.stdout.flush()

    def _junit(self) -> None:
        # pytest's LogXML has written its file in its own sessionfinish by now.
        path = self.config.getoption("xmlpath", None)
        if self.run is not None and path:
            problem = junit.rewrite(Path(self.config.invocation_params.dir, path), self.run)
            if problem:  # the terminal summary is over: say it on stderr
                sys.stderr.write(f"stackcheck: {problem}\n")

    def _write(self, run: Run) -> None:
        reports = self._path("reports_dir")
        assert reports is not None  # the option has a default
        note_override = self._path("incident_note")
        stack_runs = run.stacks
        try:
            reports.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # One line for the directory, not one per file of every stack.
            self.problems.append(
                f"cannot write {reports}: {exc.strerror or exc}; "
                "no stack's reports were written and no incident clock was moved"
            )
            stack_runs = []
            self.clock_unknown.update(s.stack.name for s in run.stacks)
            for stack_run in run.stacks:  # no baseline could be read either
                found = baseline.Comparison(None, [], run.finished_at, {})
                self.comparisons[stack_run.stack.name] = found
        for stack_run in stack_runs:
            name = slug(stack_run.stack.name)
            one = run.only(stack_run)
            comparison = self._compare(reports / f"baseline-{name}.json", stack_run, run)
            incident = None
            try:
                clock = reports / f"incident-{name}.json"
                incident = escalation.advance(
                    clock,
                    one,
                    note_override,
                    self.problems.append,
                    notify=bool(stack_run.stack.notify.urls),
                )
            except WriteFailed as exc:
                self.problems.append(
                    f"{exc}; the incident clock of {stack_run.stack.name} was not moved"
                )
                self.clock_unknown.add(stack_run.stack.name)
            self.incidents[stack_run.stack.name] = incident
            if incident is not None and incident.due:
                self.notifier.send(stack_run.stack, incident, run.finished_at)
            self._try(
                summary.write,
                reports / f"summary-{name}.json",
                one,
                {name: incident},
                {name: comparison},
            )
            if not one.partial:
                # A partial run leaves the metrics of the last complete run alone:
                # what it did not run is not known to be healthy.
                self._try(
                    metrics.write,
                    reports / f"stackcheck-{name}.prom",
                    one,
                    {stack_run.stack.name: incident},
                )
            if incident is not None:
                self._try(note.write, Path(incident.note), incident, one, comparison)
        by_slug = {slug(name): found for name, found in self.incidents.items()}
        compared = {slug(name): found for name, found in self.comparisons.items()}
        if self.to_stdout:
            self.stdout_text = summary.text(run, by_slug, compared)
        elif (path := self._path("summary_json")) is not None:
            self._try(summary.write, path, run, by_slug, compared)
        if (path := self._path("prom_file")) is not None and not run.partial:
            self._try(metrics.write, path, run, self.incidents)

    def _compare(self, path: Path, stack_run: StackRun, run: Run) -> baseline.Comparison:
        """What changed since the stack's last healthy run; a healthy run is the new one."""
        found = baseline.compare(path, stack_run, run.finished_at, self.problems.append)
        self.comparisons[stack_run.stack.name] = found
        if stack_run.healthy and found.observed:
            if baseline.key_for(self.config) is None:
                self.problems.append(
                    f"environments not digested: {baseline.key_problem(self.config)}"
                )
            self._try(baseline.save, path, baseline.Baseline(run.started_at, found.observed))
        return found

    def _try(self, write: Any, path: Path, *args: Any) -> None:
        try:
            write(path, *args)
        except WriteFailed as exc:
            self.problems.append(str(exc))
        else:
            self.outputs.append(path)

    # Outermost wrapper: prints after pytest's FAILURES and short test summary.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> Generator[None]:
        result = yield
        if self.run is not None:
            terminal.write(
                terminalreporter,
                self.run,
                self.incidents,
                self.outputs,
                self.problems,
                self.clock_unknown,
                self.comparisons,
            )
            for text, ok in self.notifier.lines():
                terminalreporter.write_line(f"notify: {text}", yellow=not ok)
        return result


def _relabel(run: Run) -> None:
    """Rewrite each failing report's text for its role, before pytest prints it."""
    for row in run.rows:
        if row.hint is None:
            continue
        report = row.result.report
        if row.caused_by is not None and report.when == "call":
            report.longrepr = row.hint.consequence_text(row.caused_by)
