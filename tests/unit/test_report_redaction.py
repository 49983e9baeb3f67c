"""Canary passwords: whatever a probe lets slip, no output of the run shows them.

The fabricated facts, unlike the real probes, redact nothing, and a fixture
prints and logs the canaries in every check: everything here is caught by the
plugin's and the reporter's own, defensive redaction.
"""

from __future__ import annotations

from typing import Any

import pytest
from reportbench import CheckRun

pytest_plugins = ("pytester",)

DSN_CANARY = "canary-Dsn-7Hq2x"
ENV_CANARY = "canary-Env-Zr91k"
LEAKED_URL = f"http://admin:{ENV_CANARY}@127.0.0.1:18000/health"

STACK = {
    "name": "testbed",
    "compose_project": "tb",
    "services": {
        "db": {
            "postgres_dsn": f"postgresql://scheduler:{DSN_CANARY}@127.0.0.1:15432/scheduler",
            "port": 5432,
        },
        "backend": {
            "depends_on": ["db"],
            "health_url": "http://127.0.0.1:18000/health",
            "port": 8000,
        },
    },
}

# What careless probes could hand over: each leak reaches a different output path.
LEAKY: dict[str, dict[str, Any]] = {
    # A failure's evidence (container_healthy) and the live values of every db check.
    "container:db": {
        "health_status": "unhealthy",
        "health_output": f"FATAL password authentication failed ({DSN_CANARY})",
    },
    # Log lines: the evidence and the hint's "log lines" of logs_clean.
    "logs:db": {"match_count": 1, "matches": [f"connecting with password={ENV_CANARY}"]},
    "logs:backend": {"match_count": 1, "matches": [f"ERROR auth {DSN_CANARY}"]},
    # Could not check: the reason is the blind spot's text and the setup error's.
    "pg:db": {"blind": f"PGPASSWORD={ENV_CANARY} rejected"},
    # The URL is a command's value (curl) and part of the evidence, as is the body.
    "http:backend": {"url": LEAKED_URL, "status": 503, "body": f"token {ENV_CANARY}"},
    # No CPU: cpu_headroom crashes; `-l` prints its locals, the stack's DSN among them.
    "stats:db": {"online_cpus": 0},
}

# Printed, written to stderr and logged by every check: the captured sections.
LEAKY_PLUGIN = f'''
import logging
import sys

import pytest


@pytest.fixture(autouse=True)
def leak():
    print("DATABASE_URL=postgresql://scheduler:{DSN_CANARY}@db/scheduler")
    sys.stderr.write("PGPASSWORD={ENV_CANARY}\\n")
    logging.getLogger("leaky").warning("token %s", "{ENV_CANARY}")
    yield
'''


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_no_output_shows_a_password(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    monkeypatch.setenv("PGPASSWORD", ENV_CANARY)
    (checkrun.path / "leaky.py").write_text(LEAKY_PLUGIN)
    checkrun.scenario(LEAKY, stacks=[STACK])
    result = checkrun.run(
        "-p",
        "leaky",
        "-rA",
        "-l",  # locals in tracebacks: the fixtures' values hold the canaries
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        *workers,
        subprocess=bool(workers),
    )
    # db:container_healthy, both logs_clean, backend:http_health fail; cpu_headroom
    # crashes in its call (pytest: failed); both pg checks could not check (errors).
    result.assert_outcomes(failed=5, errors=2, passed=14, skipped=1)  # 3 of the host
    outputs = {
        "stdout": result.stdout.str(),
        "stderr": result.stderr.str(),
        "junit.xml": (checkrun.path / "junit.xml").read_text(),
    }
    outputs.update({p.name: p.read_text() for p in checkrun.reports.iterdir()})
    assert {"summary-testbed.json", "stackcheck-testbed.prom", "incident-testbed.json"} <= set(
        outputs
    )
    assert any(name.startswith("incident-testbed-") for name in outputs)
    for name, text in outputs.items():
        assert DSN_CANARY not in text, name
        assert ENV_CANARY not in text, name
    # The leaks were there to hide: their surroundings still show.
    stdout = outputs["stdout"]
    assert "FATAL password authentication failed (******)" in stdout
    # Masked before it is filled in, so the mask's '*' is quoted with the rest.
    assert "curl -v 'http://admin:******@127.0.0.1:18000/health'" in stdout
    assert "could not check db:pg_connections: PGPASSWORD=****** rejected" in stdout
    assert "    PGPASSWORD=****** rejected" in stdout  # the blind spot's reason
    assert "DATABASE_URL=postgresql://scheduler:******@db/scheduler" in stdout
    assert "connecting with password=******" in outputs["summary-testbed.json"]
    assert "ZeroDivisionError" in stdout  # the crash was reported, its locals masked
    assert "token ******" in outputs["junit.xml"]


def test_a_kept_redaction_is_kept_per_set_of_secrets() -> None:
    """Short texts' redactions are kept (redact._redacted_short): by text and secrets."""
    from stackcheck.redact import MASK, redact, redact_text

    text = "the pool of alice-Sekret-42 is full"
    assert redact_text(text, ["alice-Sekret-42"]) == f"the pool of {MASK} is full"
    assert redact_text(text, []) == text  # the same text, no secret: nothing to hide
    assert redact_text(text, ["other"]) == text
    assert redact({"a": [text]}, ["alice-Sekret-42"]) == {"a": [f"the pool of {MASK} is full"]}
    long = text + " " * 600  # past the kept length: redacted each time
    assert redact_text(long, ["alice-Sekret-42"]).startswith(f"the pool of {MASK}")
    assert redact_text(long, []) == long
