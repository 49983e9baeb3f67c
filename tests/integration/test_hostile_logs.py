"""A hostile log against the real engine: one 10 MB line, then the error that matters.

The engine splits the long line into 611 entries of 16 KiB and counts ``tail``
in entries, so with a tail that covers it the suite used to read all 10 MB at
once (and a byte cap that read oldest-first would have read only the long
line). The probe reads the newest 1 MiB instead: the ERROR line after the long
line is found, the long line's pieces come back as one line, and the run's
memory stays bounded (measured, not asserted here: bench/hostile.py, row
"10 MB log line").
"""

from __future__ import annotations

from pathlib import Path

from testbed import Testbed
from tests.checkrun import run_checks

LONG_LINE_BYTES = 10_000_000
ERROR_LINE = "ERROR: payment worker lost its database connection"


def write_long_line_then_error(testbed: Testbed) -> None:
    """On the backend's PID 1 stderr, as its own output: ``docker logs`` shows it."""
    script = (
        'printf "INFO: before the long line %s\\n" 1 2 3 >/proc/1/fd/2; '
        f"head -c {LONG_LINE_BYTES} /dev/zero | tr '\\0' x >/proc/1/fd/2; "
        'echo >/proc/1/fd/2; printf "%s\\n" "$0" >/proc/1/fd/2'
    )
    testbed.exec("backend", ["sh", "-c", script, ERROR_LINE])


def test_a_10_mb_line_does_not_hide_the_error_line_after_it(
    testbed: Testbed, tmp_path: Path
) -> None:
    stack_file = testbed.write_stack_file(tmp_path / "stack.toml")
    # A tail that covers the whole long line (611 entries) and the log before it.
    stack_file.write_text(stack_file.read_text() + "\n[logs]\ntail = 2000\n")
    try:
        write_long_line_then_error(testbed)
        run = run_checks("--stack", str(stack_file), "-k", "test_logs_clean", tmp_path=tmp_path)
    finally:
        testbed.reset()
    assert run.failed() == {"test_logs_clean[backend]"}, run.stdout[-3000:]
    message = run.messages["test_logs_clean[backend]"]
    assert ERROR_LINE in message
    # The newest 1 MiB holds the end of the long line and the ERROR line: two
    # lines. Reading the whole tail would count the three INFO lines before it too.
    assert "1 of the last 2 log lines (tail 2000," in message, message[:2000]
    assert "x" * 1000 not in run.stdout  # the long line is no evidence, and never printed whole
