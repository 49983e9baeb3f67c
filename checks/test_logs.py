"""Runbook Quick diagnosis 2: recent log lines that name an error, exception or fatal."""

from stackcheck import expect
from stackcheck.config import Stack
from stackcheck.probes.facts import LogFacts


def test_logs_clean(logs: LogFacts, stack: Stack) -> None:
    expect(logs.error is None, logs.error or "")
    rules = stack.logs
    shown = "\n".join(f"  | {line}" for line in logs.matches)
    expect(
        logs.match_count == 0,
        f"{logs.match_count} of the last {logs.lines_read} log lines "
        f"(tail {rules.tail}, last {rules.since_s:g} s) of {logs.service} match "
        f"{'/'.join(rules.patterns)}:\n{shown}",
    )
