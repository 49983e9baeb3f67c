"""Run `pytest checks/` the way a user does (a subprocess) and read what it said."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CheckRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    junit: Path
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/...
    messages: dict[str, str] = field(default_factory=dict)  # test id -> failure text

    def failed(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v in ("failed", "error")}

    def passed(self) -> set[str]:
        return {k for k, v in self.outcomes.items() if v == "passed"}


def run_checks(
    *args: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CheckRun:
    """`python -m pytest checks/ ARGS` from the repo root, with JUnit XML read back."""
    junit = tmp_path / f"junit-{time.monotonic_ns()}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "checks/",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--reports-dir={tmp_path / 'reports'}",
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
    run = CheckRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started, junit)
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
