"""Run `pytest checks/` the way a user does (a subprocess) and read what it said.

Also the real checks' definitions, read from checks/*.py, so that the
integration tests derive which checks a stack has (and which need the Docker
engine) from the checks themselves instead of keeping a table of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackcheck.config import load_stack
from stackcheck.definition import Check
from stackcheck.model import HOST, CheckRef
from stackcheck.probes.gather import through_engine
from stackcheck.report.files import slug
from stackcheck.where import refs
from tests.unit.definitions import definitions

ROOT = Path(__file__).resolve().parent.parent
# A private module name: never the `test_container` pytest itself imports checks/ as.


@dataclass
class CheckRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    junit: Path
    reports: Path
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/error/skipped
    messages: dict[str, str] = field(default_factory=dict)  # test id -> message + text

    def failed(self) -> set[str]:
        """The checks that found the stack wrong (JUnit <failure>)."""
        return {k for k, v in self.outcomes.items() if v == "failed"}

    def errors(self) -> set[str]:
        """The checks that could not check (JUnit <error>): blind spots, not stack faults."""
        return {k for k, v in self.outcomes.items() if v == "error"}

    def passed(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v == "passed"}

    def skipped(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v == "skipped"}

    def summary(self, stack: str) -> dict[str, Any]:
        """The per-stack summary JSON this run wrote for the stack named ``stack``."""
        return json.loads(summary_path(self.reports, stack).read_text(encoding="utf-8"))

    def remediation(self) -> str:
        """The terminal's Remediation section (everything after its header line)."""
        marker = " Remediation "
        assert marker in self.stdout, self.stdout[-3000:]
        return self.stdout[self.stdout.index(marker) :].split("\n", 1)[1]


def summary_path(reports: Path, stack: str) -> Path:
    return reports / f"summary-{slug(stack)}.json"


def run_checks(
    *args: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CheckRun:
    """`python -m pytest checks/ ARGS` from the repo root, with JUnit XML read back."""
    junit = tmp_path / f"junit-{time.monotonic_ns()}.xml"
    reports = tmp_path / "reports"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "checks/",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--reports-dir={reports}",
        *args,
    ]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    run = CheckRun(
        done.returncode, done.stdout, done.stderr, time.monotonic() - started, junit, reports
    )
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "")
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                element = case.find(kind)
                if element is not None:
                    outcome = {"failure": "failed"}.get(kind, kind)
                    run.messages[name] = (
                        (element.get("message") or "") + "\n" + (element.text or "")
                    )
            run.outcomes[name] = outcome
    return run


def check_definitions() -> tuple[Check, ...]:
    """Every real check, from the @check decorators in checks/test_*.py."""
    return tuple(definitions().values())


def check_ids(
    stack_file: Path, engine_only: bool = False, replicas: dict[str, list[int]] | None = None
) -> set[str]:
    """The test ids `pytest checks/ --stack stack_file` runs (one stack).

    ``engine_only``: just the checks that read a fact through the Docker engine
    (over ssh://, the host checks too: they ride the engine's SSH login);
    ``replicas``: the services that run several containers, and their numbers.
    """
    stack = load_stack(stack_file)
    over_ssh = (stack.docker_host or "").startswith("ssh://")

    def through(ref: CheckRef, check: Check) -> bool:
        if ref.service == HOST:
            return over_ssh
        return any(through_engine(stack.services[ref.service], kind) for kind in check.facts)

    return {
        f"test_{check.name}[{ref.where}]"
        for check in check_definitions()
        for ref in refs(stack, check, replicas)
        if not engine_only or through(ref, check)
    }
