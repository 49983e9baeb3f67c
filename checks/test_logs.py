"""Runbook Quick diagnosis 2: recent log lines that name an error, exception or fatal."""

from stackcheck import Fix, Layer, check, expect
from stackcheck.config import Stack
from stackcheck.probes.facts import LogFacts
from stackcheck.runbook import ALL, DIAGNOSE_LOGS, LOGS, LOGS_GREP, RESOLVE_CRASH_LOOP


@check(
    title="no error lines in recent logs",
    layer=Layer.LOGS,
    step=DIAGNOSE_LOGS,
    fix=Fix(RESOLVE_CRASH_LOOP, (LOGS_GREP, LOGS)),
    alerts=(*ALL, "high_error_rate"),
)
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
