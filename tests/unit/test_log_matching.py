"""Which log lines count as bad: ``docker_probe.log_facts`` on a container that only has logs.

The fake stands in for docker-py's Container: ``log_facts`` calls nothing but
``.logs(**kw)``. Like the engine, the fake keeps the log as entries of at most
16 KiB (a longer line is split into several, without line breaks between them),
counts ``tail`` in entries, and with ``stream=True`` hands out one entry per
item, oldest first, lazily, so a test can see how many bytes were taken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from docker.models.containers import Container

from stackcheck.config import LogRules
from stackcheck.probes import docker_probe, logmatch
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.docker_probe import (
    LOG_LINE_CAP,
    LOG_MATCH_CAP,
    LOG_READ_BYTES,
    log_facts,
)
from stackcheck.probes.facts import LogFacts

ENTRY_BYTES = 16 * 1024  # the engine's split of a long line (json-file and local drivers)


def entries_of(raw: bytes) -> list[bytes]:
    """``raw`` as the engine stores it: one entry per line, long lines in 16 KiB pieces."""
    found: list[bytes] = []
    for line in raw.splitlines(keepends=True):
        found += [line[i : i + ENTRY_BYTES] for i in range(0, len(line), ENTRY_BYTES)]
    return found


class FakeContainer:
    def __init__(self, raw: bytes) -> None:
        self.entries = entries_of(raw)
        self.calls: list[dict[str, Any]] = []
        self.bytes_taken = 0  # every byte any stream handed out, over all calls

    def logs(self, **kw: Any) -> bytes | Iterator[bytes]:
        self.calls.append(kw)
        tail = kw.get("tail", "all")
        chosen = self.entries if tail == "all" else self.entries[-tail:] if tail else []
        if not kw.get("stream"):
            return b"".join(chosen)
        return self._stream(chosen)

    def _stream(self, chosen: list[bytes]) -> Iterator[bytes]:
        for entry in chosen:
            self.bytes_taken += len(entry)
            yield entry


def facts(raw: bytes, rules: LogRules | None = None) -> LogFacts:
    return log_facts(cast(Container, FakeContainer(raw)), "backend", rules or LogRules())


def test_patterns_match_case_insensitively_on_word_boundaries() -> None:
    raw = b"\n".join(
        [
            b"INFO started",
            b"ERROR: connection to db failed",
            b"an Exception was raised",
            b"Fatal: out of memory",
            b"Traceback (most recent call last):",
            b"kernel panic",
            # Words that merely contain a pattern are not bad lines.
            b"errors=0 terrorists=0",
            b"ExceptionHandler registered",
            b"panicked=false",
        ]
    )
    found = facts(raw)
    assert found.lines_read == 9
    assert found.matches == [
        "ERROR: connection to db failed",
        "an Exception was raised",
        "Fatal: out of memory",
        "Traceback (most recent call last):",
        "kernel panic",
    ]
    assert found.match_count == 5


def test_the_stack_file_s_patterns_replace_the_defaults() -> None:
    found = facts(b"ERROR: x\nWARN: disk slow\n", LogRules(patterns=("warn",)))
    assert found.matches == ["WARN: disk slow"]


def test_ignore_drops_known_harmless_lines() -> None:
    raw = (
        b"ERROR: connection reset by peer (client went away)\n"
        b"ERROR: relation users does not exist\n"
        b"FATAL: terminating connection due to administrator command\n"
    )
    rules = LogRules(ignore=("connection reset by peer", r"terminating connection due to admin"))
    found = facts(raw, rules)
    assert found.matches == ["ERROR: relation users does not exist"]
    assert found.match_count == 1
    assert found.lines_read == 3  # dropped lines were read, just not counted as bad


def test_non_utf8_bytes_do_not_stop_the_check() -> None:
    found = facts(b"\xff\xfe\x00ERROR: bad \xc3\x28 bytes\nok\n")
    assert found.match_count == 1
    assert "ERROR: bad" in found.matches[0]
    assert "\ufffd" in found.matches[0]  # the odd bytes show as replacement characters


def test_at_most_the_last_few_matches_are_kept_but_all_are_counted() -> None:
    raw = b"\n".join(b"ERROR %d" % i for i in range(LOG_MATCH_CAP + 15))
    found = facts(raw)
    assert found.match_count == LOG_MATCH_CAP + 15
    assert found.matches == [f"ERROR {i}" for i in range(15, LOG_MATCH_CAP + 15)]


def test_long_lines_are_cut_with_a_marker_saying_how_much() -> None:
    line = "ERROR " + "x" * (LOG_LINE_CAP * 4)
    found = facts(line.encode() + b"\n")
    cut = len(line) - LOG_LINE_CAP
    assert found.matches == [line[:LOG_LINE_CAP] + f" … [truncated {cut} chars]"]


def test_a_bad_word_deep_in_a_long_line_is_shown_in_context() -> None:
    line = "x" * 5000 + " ERROR: disk full " + "y" * 5000
    (shown,) = facts(line.encode() + b"\n").matches
    assert "ERROR: disk full" in shown
    assert shown.startswith(f"[truncated {5000 - docker_probe.LOG_EXCERPT_LEAD + 1} chars] … x")
    assert shown.endswith(" chars]")


def test_reads_both_streams_within_the_stack_file_s_tail() -> None:
    container = FakeContainer(b"")
    found = log_facts(cast(Container, container), "backend", LogRules(tail=50, since_s=60))
    assert found == LogFacts("backend")
    (call,) = container.calls
    assert call["stdout"] is True and call["stderr"] is True
    assert call["tail"] == 50
    assert isinstance(call["since"], int)


# ------------------------------------------------------------- bounded reading


def test_a_line_split_into_entries_is_one_line_and_the_lines_after_it_are_read() -> None:
    """A 10 MB line is 611 entries of 16 KiB: a tail covering it must not bury what follows.

    The newest LOG_READ_BYTES are read, not the oldest: the ERROR line after
    the long one is found, the long line's pieces count as one line, and the
    bytes taken from the engine stay within a few reads of the budget.
    """
    long_line = b"INFO " + b"x" * 10_000_000 + b"\n"
    raw = b"ERROR: before the long line (older than the window)\n" + long_line
    container = FakeContainer(raw + b"ERROR: after the long line\n")
    found = log_facts(cast(Container, container), "backend", LogRules(tail=10_000))
    assert found.matches == ["ERROR: after the long line"]
    assert found.lines_read == 2  # what the window holds of the long line, and the ERROR line
    passes = len(container.calls)
    assert container.bytes_taken <= passes * (LOG_READ_BYTES + ENTRY_BYTES)
    assert container.calls[0]["tail"] == 10_000
    assert container.calls[-1]["tail"] <= LOG_READ_BYTES // ENTRY_BYTES + 1
    assert all(c["stream"] is True and c["follow"] is False for c in container.calls)


def test_a_window_that_fits_is_read_once_and_whole() -> None:
    raw = b"".join(b"INFO request %d\n" % i for i in range(5000)) + b"ERROR: last\n"
    container = FakeContainer(raw)
    found = log_facts(cast(Container, container), "backend", LogRules(tail=10_000))
    assert len(container.calls) == 1
    assert found.lines_read == 5001
    assert found.matches == ["ERROR: last"]


def test_the_newest_entries_are_kept_when_the_tail_is_more_than_the_budget() -> None:
    """Many mid-sized lines: the window shrinks until it fits, keeping the newest."""
    lines = [b"INFO %05d " % i + b"y" * 1000 + b"\n" for i in range(3000)]
    container = FakeContainer(b"".join(lines) + b"FATAL: newest\n")
    found = log_facts(cast(Container, container), "backend", LogRules(tail=5000))
    assert found.matches == ["FATAL: newest"]
    assert 0 < found.lines_read * 1011 <= LOG_READ_BYTES
    assert found.lines_read > 500  # halving stops at the first tail that fits


class TtyStream:
    """docker-py's stream of a tty container: one byte per item, and the raw response."""

    def __init__(self, raw: bytes) -> None:
        self.items_taken = 0

        class Raw:
            def __init__(self, data: bytes) -> None:
                self.data, self.at = data, 0

            def read(self, amount: int) -> bytes:
                chunk = self.data[self.at : self.at + amount]
                self.at += len(chunk)
                return chunk

        self._response = type("Response", (), {"raw": Raw(raw)})()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        byte = self._response.raw.read(1)
        if not byte:
            raise StopIteration
        self.items_taken += 1
        return byte


def test_a_tty_container_s_log_is_read_in_chunks_not_bytes() -> None:
    raw = b"INFO x\n" * 20_000 + b"ERROR: on a tty\n"
    stream = TtyStream(raw)
    container = type(
        "TtyContainer", (), {"attrs": {"Config": {"Tty": True}}, "logs": lambda self, **kw: stream}
    )()
    found = log_facts(cast(Container, container), "backend", LogRules())
    assert found.matches == ["ERROR: on a tty"]
    assert found.lines_read == 20_001
    assert stream.items_taken == 1  # the rest came from the raw response in large chunks


# ------------------------------------------------- patterns that would not end


def test_the_issue_s_catastrophic_ignore_pattern_runs_in_no_time() -> None:
    """error (a+)+$ held Python's re 40 s on this line; regex knows this shape."""
    line = b"error " + b"a" * 32 + b"!"
    found = facts(line, LogRules(ignore=(r"error (a+)+$",)))
    assert found.blind is None
    assert found.match_count == 1  # not ignored: the line does not end in a's


def catastrophic(n: int = 22) -> tuple[bytes, LogRules]:
    """A line and an ignore pattern regex cannot defuse: (a|a)+ matches n a's 2**n ways.

    With n = 22 Python's re answers after about 0.6 s (regex: 1.3 s), far
    more than the budgets below, so a probe without the guard counts the line
    as bad instead of giving up.
    """
    return b"error " + b"a" * n + b"!\n", LogRules(ignore=(r"error (a|a)+$",))


def test_a_catastrophic_ignore_pattern_makes_the_check_blind_naming_it() -> None:
    line, rules = catastrophic()
    container = FakeContainer(b"ERROR: real\n" + line)
    found = log_facts(cast(Container, container), "backend", rules, Deadline(0.1))
    assert found.blind is not None
    assert "'error (a|a)+$'" in found.blind
    assert "[logs] ignore" in found.blind and "backend" in found.blind
    assert "simplify the pattern" in found.blind
    assert "\n" not in found.blind
    assert found.matches == [] and found.match_count == 0  # never a partial verdict


def test_a_catastrophic_bad_line_pattern_is_named_among_the_patterns() -> None:
    rules = LogRules(patterns=("fatal", r"error (a|a)+$"))
    found = log_facts(
        cast(Container, FakeContainer(b"error " + b"a" * 22 + b"!\n")),
        "backend",
        rules,
        Deadline(0.1),
    )
    assert found.blind is not None
    assert "'error (a|a)+$' (the stack file's [logs] patterns)" in found.blind


def test_other_threads_run_while_a_pattern_backtracks() -> None:
    """The match releases the interpreter lock: the other probes are not starved."""
    line, rules = catastrophic(n=40)
    ticks = 0
    matching = threading.Event()
    done = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            if matching.is_set():
                ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    matching.set()
    found = log_facts(cast(Container, FakeContainer(line)), "backend", rules, Deadline(0.6))
    matching.clear()
    done.set()
    thread.join()
    assert found.blind is not None
    assert ticks >= 10  # with the lock held throughout, the ticker gets 0 to 2


def test_running_out_of_budget_over_many_lines_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_probe, "LOG_MATCH_BUDGET_S", 0.0)
    found = facts(b"INFO a\nINFO b\n")
    assert found.blind is not None
    assert "against 2 lines of backend's log" in found.blind
    assert "lower [logs] tail" in found.blind


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        (LogRules(patterns=("x{100000}",)), "'x{100000}'"),
        (LogRules(ignore=("(?:x{700}){700}",)), "'(?:x{700}){700}'"),
        (LogRules(ignore=(".{4294967294}",)), "'.{4294967294}'"),
        # Each alone is fine; together they would take as long.
        (LogRules(patterns=("a{6000}", "b{6000}")), "'a{6000}'"),
    ],
)
def test_a_pattern_too_costly_to_compile_is_refused_before_compiling(
    rules: LogRules, named: str
) -> None:
    """regex expands counted repetition in C with the lock held: .{4294967294} never returns."""
    found = facts(b"ERROR: x\n", rules)
    assert found.blind is not None
    assert named in found.blind and "repeats too much" in found.blind
    assert found.matches == []


def test_patterns_with_moderate_counted_repetition_are_run() -> None:
    rules = LogRules(patterns=(r"error \d{4}", r"(?:ab){1,100}c"), ignore=(r"[0-9a-f]{64}",))
    found = facts(b"error 1234 here\nxx ababc\nerror 9999 " + b"f" * 64 + b"\n", rules)
    assert found.blind is None
    assert found.matches == ["error 1234 here", "xx ababc"]


def test_the_copy_count_follows_the_nesting() -> None:
    assert logmatch.copies("plain words") == 0
    assert logmatch.copies("x{3}") == 2
    assert logmatch.copies("(?:ab{3}){2}") == (2 - 1) + (6 - 1)  # a twice, b six times
    assert logmatch.copies("x+y*z{1,}") == 0  # open repetition is not expanded
    assert logmatch.pattern_problem("(") is not None and "invalid regex" in str(
        logmatch.pattern_problem("(")
    )
