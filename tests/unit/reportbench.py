"""The reporter's test bench: the fake collector and a scenario, run in pytester."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stackcheck.model import CHECKS

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"
SCHEMAS = HERE.parent.parent.parent / "shared" / "schemas"

TEST_MODULE = """
from stackcheck.model import expect


def _check(verdict):
    if "print" in verdict:
        print(verdict["print"])
    if "crash" in verdict:
        raise RuntimeError(verdict["crash"])
    expect("evidence" not in verdict, verdict.get("evidence", ""))
""" + "".join(f"\n\ndef test_{check}(ref, verdict):\n    _check(verdict)\n" for check in CHECKS)

PASSWORD = "s3cret-pw"
TESTBED: dict[str, Any] = {
    "name": "testbed",
    "compose_project": "tb",
    "services": {
        "db": {
            "postgres_dsn": f"postgresql://scheduler:{PASSWORD}@127.0.0.1:15432/scheduler",
            "port": 5432,
        },
        "backend": {
            "depends_on": ["db"],
            "health_url": "http://127.0.0.1:18000/health",
            "port": 8000,
        },
    },
}

# What the probes see when the db container has been stopped (testbed facts:
# a stopped container also drops out of the compose network's DNS).
DB_STOPPED: dict[str, Any] = {
    "db:container_running": {
        "evidence": "container tb-db-1 is exited (exit code 0)",
        "context": {"state": "exited", "exit_code": 0},
    },
    "db:container_healthy": {"evidence": "container tb-db-1 is not running: no health status"},
    "db:memory_headroom": {"evidence": "container tb-db-1 is not running: no memory stats"},
    "db:cpu_headroom": {"evidence": "container tb-db-1 is not running: no CPU stats"},
    "db:pg_ready": {
        "evidence": "no response from 127.0.0.1:15432",
        "context": {"pg_outcome": "no response", "pg_user": "scheduler"},
    },
    "db:pg_connections": {"evidence": "cannot connect to count connections"},
    "backend->db:net_resolve": {"evidence": "db does not resolve from backend"},
    "backend->db:net_ping": {"evidence": "db does not resolve from backend"},
    "backend->db:net_port": {"evidence": "db does not resolve from backend"},
    "backend:http_health": {
        "evidence": "GET http://127.0.0.1:18000/health answered 503",
        "context": {"http_status": 503},
    },
    "backend:container_healthy": {"evidence": "health status is unhealthy"},
    "backend:logs_clean": {
        "evidence": "2 error lines in the last 200",
        "context": {"log_lines": ["ERROR: connection to db failed", "ERROR: retrying"]},
    },
}
DB_CONSEQUENCES = sorted(set(DB_STOPPED) - {"db:container_running"})

BACKEND_OOM: dict[str, Any] = {
    "backend:container_stable": {
        "evidence": "OOM-killed 12s ago (exit code 137), 1 restart in 300s",
        "context": {"oom_killed": True, "exit_code": 137, "restart_count": 1},
    },
}


class CheckRun:
    """One pytester directory with the fake collector and a scenario."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        pytester.makeconftest((HERE / "fake_collector.py").read_text())
        pytester.makepyfile(test_checks=TEST_MODULE)
        self.scenario({})

    @property
    def path(self) -> Path:
        return self.pytester.path

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    def scenario(
        self, faults: Mapping[str, Any], stacks: list[dict[str, Any]] | None = None
    ) -> None:
        scenario = {"stacks": stacks or [TESTBED], "faults": dict(faults)}
        (self.path / "scenario.json").write_text(json.dumps(scenario))

    def run(self, *args: str, subprocess: bool = False) -> pytest.RunResult:
        # The installed entry point would register the real collector too.
        args = ("-p", "no:stackcheck", "-p", "no:cacheprovider", *args)
        if subprocess:
            return self.pytester.runpytest_subprocess(*args)
        return self.pytester.runpytest(*args)

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / "summary.json").read_text())
        return data

    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["key"]: c for c in self.summary()["checks"]}
