"""The reporter's test bench: the real checks on fabricated facts, run in pytester.

A scenario says what the probes saw (factbench); the verdicts, the causal
analysis and every output are the real ones. Nothing here lists the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import factbench
import pytest

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"

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
# The testbed: 2 services, 1 edge, its host. Checks per service: running, stable,
# healthy, logs, memory, cpu (6 x 2); db: pg_ready, pg_connections, pg_data_disk;
# the edge: resolve, ping, port; backend: http_health; the host: engine, disk, memory.
TESTBED_ITEMS = 22
TESTBED_SKIPPED = 2  # neither container has a HEALTHCHECK in the healthy facts

# What the probes see when the db container has been stopped (testbed facts:
# a stopped container also drops out of the compose network's DNS).
_NOT_RUNNING = "cannot look inside db: container is exited"
DB_STOPPED: dict[str, dict[str, Any]] = {
    "container:db": {"state": "exited", "exit_code": 0, "finished_at": "2026-11-28T02:34:45Z"},
    "stats:db": {"error": _NOT_RUNNING},
    "datafs:db": {"error": _NOT_RUNNING},
    "pg:db": {"ping": "no response", "error": "connection refused", "in_use": None},
    "net:backend->db": {
        "resolve": "failed",
        "ping": "failed",
        "port_open": "failed",
        "detail": {"resolve": "name does not resolve"},
    },
    "http:backend": {"status": 503, "body": '{"status":"unhealthy"}', "json_status": "unhealthy"},
    "logs:backend": {
        "match_count": 2,
        "matches": ["ERROR: connection to db failed", "ERROR: retrying"],
    },
}
DB_CONSEQUENCES = sorted(
    [
        "db:memory_headroom",
        "db:cpu_headroom",
        "db:pg_data_disk",
        "db:pg_ready",
        "db:pg_connections",
        "backend->db:net_resolve",
        "backend->db:net_ping",
        "backend->db:net_port",
        "backend:http_health",
        "backend:logs_clean",
    ]
)
DB_FAILED = 1 + len(DB_CONSEQUENCES)

BACKEND_OOM: dict[str, dict[str, Any]] = {
    "container:backend": {
        "oom_killed": True,
        "exit_code": 137,
        "restart_count": 1,
        "recent_ooms": 1,
    },
}


def toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers and lists of strings read the same in TOML


def stack_file(spec: Mapping[str, Any]) -> str:
    """The stack file's name in the pytester directory: ``file``, or NAME.toml."""
    return str(spec.get("file") or f"{spec['name']}.toml")


def stack_toml(spec: Mapping[str, Any]) -> str:
    lines = ["[stack]", f"name = {toml_value(spec['name'])}"]
    lines.append(f"compose_project = {toml_value(spec['compose_project'])}")
    for key in ("docker_host",):
        if key in spec:
            lines.append(f"{key} = {toml_value(spec[key])}")
    for table in ("thresholds", "timeouts", "logs"):
        if spec.get(table):
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in spec[table].items()]
    for name, service in spec["services"].items():
        lines.append(f"[services.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in service.items()]
    return "\n".join(lines) + "\n"


class CheckRun:
    """One pytester directory with the real checks, stack files and a scenario."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        factbench.lay_out(pytester.path)
        pytester.syspathinsert()
        self.stacks: list[dict[str, Any]] = []
        self.scenario({})

    @property
    def path(self) -> Path:
        return self.pytester.path

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    def scenario(
        self,
        changes: Mapping[str, Any],
        stacks: list[dict[str, Any]] | None = None,
        by_stack: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """``changes`` apply to the first stack; ``by_stack`` names the stack of each."""
        self.stacks = stacks or [TESTBED]
        for spec in self.stacks:
            (self.path / stack_file(spec)).write_text(stack_toml(spec))
        scenario = dict(by_stack or {self.stacks[0]["name"]: dict(changes)})
        factbench.write_scenario(self.path, {k: dict(v) for k, v in scenario.items()})

    def args(self, paths: Sequence[str] = ("checks",), cache: bool = False) -> list[str]:
        """``paths``: what pytest collects; ``cache``: keep the cacheprovider (for --lf)."""
        found = [*paths, "-p", "fabricated"]
        if not cache:
            found += ["-p", "no:cacheprovider"]
        for spec in self.stacks:
            found += ["--stack", stack_file(spec)]
        return found

    def run(
        self,
        *args: str,
        subprocess: bool = False,
        paths: Sequence[str] = ("checks",),
        cache: bool = False,
    ) -> pytest.RunResult:
        argv = [*self.args(paths, cache), *args]
        if subprocess:
            return self.pytester.runpytest_subprocess(*argv)
        return self.pytester.runpytest(*argv)

    def summary(self, stack: str = "testbed") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / f"summary-{stack}.json").read_text())
        return data

    def checks(self, stack: str = "testbed") -> dict[str, dict[str, Any]]:
        return {c["key"]: c for c in self.summary(stack)["checks"]}


def remediation(result: pytest.RunResult) -> list[str]:
    """The Remediation section's lines, up to pytest's last summary line."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ Remediation =+$", line))
    end = max(i for i, line in enumerate(lines) if re.match(r"=+ .* in [\d.]+s", line))
    return lines[start:end]


def without_files(lines: list[str]) -> list[str]:
    """The report's lines but those about its files, the incident clock and what changed
    since the baseline (a file of the reports directory too)."""
    kept = []
    changes = False
    for line in lines:
        if line.startswith(("What changed", "WHAT CHANGED")):
            changes = True
            continue
        if changes and line.startswith("    "):
            continue
        changes = False
        if not line.startswith(("reports: ", "Incident ", "No open incident")):
            kept.append(line)
    return kept
