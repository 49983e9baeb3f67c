"""Hostile bytes in evidence never reach the engineer's terminal or the reports raw."""

from __future__ import annotations

import json

from reportbench import CheckRun

pytest_plugins = ("pytester",)

HOSTILE = "\x1b]0;pwned\x07\x1b[2Jdown\x00 for maintenance"


def test_escape_sequences_in_a_health_body_are_removed_everywhere(checkrun: CheckRun) -> None:
    checkrun.scenario(
        {"http:backend": {"status": 503, "body": HOSTILE, "json_status": None}},
    )
    result = checkrun.run("--junitxml=junit.xml")
    assert result.ret == 1
    out = result.stdout.str() + result.stderr.str()
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out
    assert "down for maintenance" in out  # the text itself is kept
    summary = json.dumps(checkrun.summary())
    assert "\\u001b" not in summary and "\\u0000" not in summary
    junit = (checkrun.path / "junit.xml").read_text()
    assert "&#27;" not in junit and "\x1b" not in junit
