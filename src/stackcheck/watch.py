"""``--watch``: re-gather and re-judge until every check passes, printing only what changed.

Each round gathers every stack's facts afresh, runs the collected checks on them,
judges the round as a run (root causes, incident clock, pages) and rewrites the
reports. It prints only the differences from the round before (newly failing,
newly passing, newly blind, root cause changed) and the incident clock. The
watch ends when a round has no failing and no blind check (recovered: the
time to recover is printed and the incident closed), at ``--watch-max``, or at
Ctrl-C; the last complete round is then reported as a plain run would be: the
usual progress line, pytest's summary, the Remediation section and its exit
status (Ctrl-C included: the last complete round's status, not pytest's 2; an
interrupt before the first round ends is pytest's own interruption).

Rounds run each item through pytest's runner without logging its reports
(``_pytest.runner.runtestprotocol(log=False)``, as pytest-rerunfailures
does: the public ``pytest_runtest_protocol`` hook would print and record every
round); only the final round is published through the public logging hooks, so
the terminal, JUnit, ``--lf`` and the reporter each see one run. Nothing of a
round outlives the next but a small snapshot of its verdicts: memory stays flat
over a long watch (tests/unit/test_watch.py runs 200 rounds).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from stackcheck.report.escalation import Incident
from stackcheck.report.results import Results
from stackcheck.report.run import UNHEALTHY, Run

NAME = "stackcheck-watch"
DEFAULT_INTERVAL_S = 5.0
MAX_INTERVAL_S = 3600.0
# At most this many labels named per line of a delta; the rest are counted.
MAX_LABELS = 12


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"--watch wants seconds, got {text[:40]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_INTERVAL_S:
        raise pytest.UsageError(f"--watch seconds must be 0 to {MAX_INTERVAL_S:g}")
    return value


def _max_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"--watch-max wants seconds, got {text[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise pytest.UsageError("--watch-max must be a number of seconds greater than 0")
    return value


def add_options(group: Any) -> None:
    group.addoption(
        "--watch",
        nargs="?",
        const=DEFAULT_INTERVAL_S,
        default=None,
        type=_seconds,
        metavar="SECONDS",
        help="re-gather and re-judge every SECONDS (default "
        f"{DEFAULT_INTERVAL_S:g}) until every check passes or Ctrl-C; each round prints what "
        "changed; ends with the usual report and exit status (write --watch=SECONDS, or "
        "put --watch after the paths)",
    )
    group.addoption(
        "--watch-max",
        type=_max_seconds,
        default=None,
        metavar="SECONDS",
        help="with --watch: stop after SECONDS even if not recovered (for a scheduled job)",
    )


def register(config: pytest.Config, collector: Any) -> None:
    """Take over the test loop when --watch is given (on the controller only)."""
    interval = config.getoption("watch", None)
    limit = config.getoption("watch_max", None)
    if interval is None:
        if limit is not None:
            raise pytest.UsageError("--watch-max needs --watch")
        return
    if hasattr(config, "workerinput"):
        return
    if config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no":
        raise pytest.UsageError("--watch runs in one process: drop -n/--dist")
    if config.getoption("pdb", False) or config.getoption("trace", False):
        raise pytest.UsageError("--watch cannot stop in the debugger: drop --pdb/--trace")
    if not config.pluginmanager.has_plugin(NAME):
        config.pluginmanager.register(Watch(config, collector, interval, limit), NAME)


# What a round leaves for the next: each check's outcome, the root causes, the status.
@dataclass(frozen=True)
class Snapshot:
    status: str
    outcomes: dict[str, str]  # label -> passed | failed | error | skipped
    roots: tuple[str, ...]


def snapshot(run: Run) -> Snapshot:
    return Snapshot(
        status=run.status,
        outcomes={row.label: row.result.outcome for row in run.rows},
        roots=tuple(row.label for row in run.roots),
    )


@dataclass(frozen=True)
class Delta:
    failing: list[str]  # failing now, not in the round before
    passing: list[str]  # passing now, failing or blind before
    blind: list[str]  # could not check now, could before
    roots: tuple[str, ...] | None  # the new root causes, when they changed
    status: str | None  # the new status, when it changed

    @property
    def changed(self) -> bool:
        return bool(
            self.failing or self.passing or self.blind or self.roots is not None or self.status
        )


def delta(before: Snapshot | None, now: Snapshot) -> Delta:
    """What changed from ``before`` (None: the first round, all of it new) to ``now``."""
    was = before.outcomes if before else {}

    def became(outcome: str, unless: Sequence[str | None]) -> list[str]:
        return [
            label
            for label, found in now.outcomes.items()
            if found == outcome and was.get(label) not in unless
        ]

    roots_changed = (before.roots if before else ()) != now.roots
    return Delta(
        failing=became("failed", ("failed",)),
        passing=became("passed", ("passed", "skipped", None)) if before else [],
        blind=became("error", ("error",)),
        roots=now.roots if roots_changed else None,
        status=now.status if before is None or before.status != now.status else None,
    )


def _names(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:MAX_LABELS])
    more = len(labels) - MAX_LABELS
    return shown + (f" and {more} more" if more > 0 else "")


def delta_lines(change: Delta, now: Snapshot) -> list[str]:
    """The lines a round prints under its heading: only what changed."""
    found = []
    if change.failing:
        found.append(f"  newly failing ({len(change.failing)}): {_names(change.failing)}")
    if change.passing:
        found.append(f"  newly passing ({len(change.passing)}): {_names(change.passing)}")
    if change.blind:
        found.append(f"  newly could not check ({len(change.blind)}): {_names(change.blind)}")
    if change.roots is not None:
        found.append(
            f"  root cause now: {_names(list(change.roots))}" if change.roots else "  no root cause"
        )
    if not change.changed:
        failing = sum(1 for o in now.outcomes.values() if o == "failed")
        blind = sum(1 for o in now.outcomes.values() if o == "error")
        found.append(f"  no change ({failing} failing, {blind} could not check)")
    return found


def duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def clock_line(name: str, incident: Incident | None, now: datetime) -> str:
    """The incident clock of one stack after a round."""
    if incident is None:
        return f"  {name}: no open incident"
    age = incident.open_for(now)
    if incident.closed_at is not None:
        return f"  {name}: incident closed; time to recover {duration(age.total_seconds())}"
    left = incident.escalate_after - age
    if left.total_seconds() <= 0:
        return f"  {name}: incident open {duration(age.total_seconds())}: ESCALATE"
    return (
        f"  {name}: incident open {duration(age.total_seconds())}, "
        f"escalates in {duration(math.ceil(left.total_seconds()))}"
    )


def recovered(run: Run) -> bool:
    """Every check that ran passed (or does not apply): none failing, none blind."""
    return run.status != UNHEALTHY and not any(s.blind_spots for s in run.stacks)


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a watch (a scheduler's timeout): ends it as Ctrl-C does."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While watching, SIGTERM ends the watch cleanly with the last round's report."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Watch:
    """The test loop of --watch (a plugin registered only when it is given)."""

    def __init__(
        self, config: pytest.Config, collector: Any, interval: float, limit: float | None
    ) -> None:
        self.config = config
        self.collector = collector
        self.interval = interval
        self.limit = limit

    def _say(self, text: str, **markup: bool) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(text, **markup)

    def _round(self, items: Sequence[pytest.Item], reporter: Any) -> list[Any]:
        """Run every item once, unlogged; feed the reports to a fresh reporter state."""
        reporter.results = Results()
        done = []
        for i, item in enumerate(items):
            nextitem = items[i + 1] if i + 1 < len(items) else None
            reports = runtestprotocol(item, log=False, nextitem=nextitem)
            for report in reports:
                reporter.results.add(report)
            done.append((item, reports))
        return done

    def _publish(self, done: list[Any], reporter: Any, run: Run) -> None:
        """The last complete round, through pytest's own logging hooks: one run's output."""
        reporter.results = Results()
        for item, reports in done:
            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            for report in reports:
                item.ihook.pytest_runtest_logreport(report=report)
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        reporter.final = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if session.config.option.collectonly or not session.items:
            return None  # pytest's own loop says what there is to say
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            return None  # pytest's own loop stops on collection errors
        reporter = self.config.pluginmanager.get_plugin("stackcheck-report")
        if reporter is None:
            return None
        items = list(session.items)
        with _terminate_as_interrupt():
            return self._loop(session, reporter, items)

    def _loop(
        self, session: pytest.Session, reporter: Any, items: list[pytest.Item]
    ) -> bool | None:
        started = time.monotonic()
        last: list[Any] | None = None
        last_run: Run | None = None
        before: Snapshot | None = None
        number = 0
        how = "recovered"
        try:
            while True:
                number += 1
                if number > 1:
                    self.collector.regather()
                round_start = datetime.now(UTC)
                done = self._round(items, reporter)
                run = reporter.round(session, round_start)
                if run is None:
                    return None
                last, last_run = done, run
                now = snapshot(run)
                self._report(number, before, now, run, reporter)
                before = now
                if recovered(run):
                    break
                elapsed = time.monotonic() - started
                if self.limit is not None and elapsed >= self.limit:
                    how = "limit"
                    break
                wait = self.interval
                if self.limit is not None:
                    wait = min(wait, self.limit - elapsed)
                time.sleep(max(wait, 0))
        except KeyboardInterrupt as exc:
            if last is None:
                raise  # no complete round: pytest's own interruption
            how = "terminated" if isinstance(exc, _Terminated) else "interrupted"
            number -= 1  # the round under way did not complete
        assert last is not None and last_run is not None
        self._end(how, number, last_run, reporter)
        self._publish(last, reporter, last_run)
        return True

    def _report(
        self, number: int, before: Snapshot | None, now: Snapshot, run: Run, reporter: Any
    ) -> None:
        at = datetime.now(UTC)
        red = now.status == UNHEALTHY
        self._say("")
        self._say(
            f"watch round {number} at {at:%H:%M:%S} UTC: {now.status}",
            red=red,
            green=not red and recovered(run),
            yellow=not red and not recovered(run),
            bold=True,
        )
        for text in delta_lines(delta(before, now), now):
            self._say(text)
        for stack_run in run.stacks:
            name = stack_run.stack.name
            self._say(clock_line(name, reporter.incidents.get(name), run.finished_at))
        for text, ok in reporter.notifier.lines(only_new=True):
            self._say(f"  notify: {text}", yellow=not ok)
        for problem in reporter.problems:
            self._say(f"  reports: {problem}", yellow=True)

    def _end(self, how: str, rounds: int, run: Run, reporter: Any) -> None:
        self._say("")
        if how == "recovered":
            times = []
            for stack_run in run.stacks:
                incident = reporter.incidents.get(stack_run.stack.name)
                if incident is not None and incident.closed_at is not None:
                    ttr = duration(incident.open_for(run.finished_at).total_seconds())
                    times.append(f"{stack_run.stack.name} time to recover {ttr}, incident closed")
            text = f"watch: recovered after {rounds} round{'s' if rounds != 1 else ''}"
            if run.partial:
                text += " (partial run: the incident stays open until a full run passes)"
            self._say(text + (": " + "; ".join(times) if times else ""), green=True, bold=True)
        elif how == "limit":
            self._say(
                f"watch: stopped at --watch-max after {rounds} rounds, not recovered: "
                "reporting the last round",
                yellow=True,
                bold=True,
            )
        else:
            self._say(
                f"watch: {how} after {rounds} complete round"
                f"{'s' if rounds != 1 else ''}: reporting the last complete round",
                yellow=True,
                bold=True,
            )
