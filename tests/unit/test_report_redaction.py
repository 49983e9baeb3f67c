"""Canary passwords: whatever a probe lets slip, no output of the run shows them.

The fake collector, unlike the real one, redacts nothing: everything here is
caught by the reporter's own, defensive redaction.
"""

from __future__ import annotations

import pytest
from reportbench import CheckRun

pytest_plugins = ("pytester",)

DSN_CANARY = "canary-Dsn-7Hq2x"
ENV_CANARY = "canary-Env-Zr91k"

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
        },
    },
}

LEAKY = {
    "db:container_running": {
        "evidence": f"container exited: FATAL password authentication failed ({DSN_CANARY})",
        "context": {"log_lines": [f"connecting with password={ENV_CANARY}"]},
        "print": f"DATABASE_URL=postgresql://scheduler:{DSN_CANARY}@db/scheduler",
    },
    "db:pg_ready": {"crash": f"connect failed for password {DSN_CANARY}"},
    "db:pg_connections": {"setup_error": f"PGPASSWORD={ENV_CANARY} rejected"},
    "backend:http_health": {
        "evidence": "503",
        "context": {"health_url": f"http://admin:{ENV_CANARY}@127.0.0.1:18000/health"},
        "print": f"token {ENV_CANARY}",
    },
    "backend:logs_clean": {
        "evidence": f"1 error line: {ENV_CANARY}",
        "context": {"log_lines": [f"ERROR auth {DSN_CANARY}"]},
    },
}


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_no_output_shows_a_password(
    checkrun: CheckRun, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    monkeypatch.setenv("PGPASSWORD", ENV_CANARY)
    checkrun.scenario(LEAKY, stacks=[STACK])
    result = checkrun.run(
        "-rA",
        "-l",  # locals in tracebacks: the fixtures' values hold the canaries
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        *workers,
        subprocess=bool(workers),
    )
    result.assert_outcomes(failed=4, errors=1, passed=13)
    outputs = {
        "stdout": result.stdout.str(),
        "stderr": result.stderr.str(),
        "junit.xml": (checkrun.path / "junit.xml").read_text(),
    }
    outputs.update({p.name: p.read_text() for p in checkrun.reports.iterdir()})
    assert {"summary.json", "stackcheck.prom", "incident.json"} <= set(outputs)
    assert any(name.startswith("incident-") for name in outputs)
    for name, text in outputs.items():
        assert DSN_CANARY not in text, name
        assert ENV_CANARY not in text, name
    # The leaks were there to hide: their surroundings still show.
    assert "FATAL password authentication failed (******)" in outputs["stdout"]
    assert "curl -v http://admin:******@127.0.0.1:18000/health" in outputs["stdout"]
    assert "<- db:pg_connections: RuntimeError: PGPASSWORD=****** rejected" in outputs["stdout"]
