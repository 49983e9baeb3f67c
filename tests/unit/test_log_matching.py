"""Which log lines count as bad: ``docker_probe.log_facts`` on a container that only has logs.

The fake stands in for docker-py's Container: ``log_facts`` calls nothing but
``.logs(**kw)``, which returns the raw bytes the engine sends.
"""

from __future__ import annotations

from typing import Any, cast

from docker.models.containers import Container

from stackcheck.config import LogRules
from stackcheck.probes.docker_probe import LOG_LINE_CAP, LOG_MATCH_CAP, log_facts
from stackcheck.probes.facts import LogFacts


class FakeContainer:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.calls: list[dict[str, Any]] = []

    def logs(self, **kw: Any) -> bytes:
        self.calls.append(kw)
        return self.raw


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


def test_long_lines_are_capped() -> None:
    found = facts(b"ERROR " + b"x" * (LOG_LINE_CAP * 4) + b"\n")
    assert len(found.matches[0]) == LOG_LINE_CAP
    assert found.matches[0].startswith("ERROR xxx")


def test_reads_both_streams_within_the_stack_file_s_tail() -> None:
    container = FakeContainer(b"")
    found = log_facts(cast(Container, container), "backend", LogRules(tail=50, since_s=60))
    assert found == LogFacts("backend")
    (call,) = container.calls
    assert call["stdout"] is True and call["stderr"] is True
    assert call["tail"] == 50
    assert isinstance(call["since"], int)
