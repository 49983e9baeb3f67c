"""The scheduled smoke job from README.md, run as written against the testbed."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stackcheck.report.files import slug
from tests.checkrun import ROOT
from tests.junit_schema import validate_junit


def job_command() -> list[str]:
    """The `run:` line of the README's smoke job that runs the checks."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("# .github/workflows/stackcheck-smoke.yml", 1)[1].split("```", 1)[0]
    line = re.search(r"run: (\.venv/bin/pytest checks/.*)", block)
    assert line, "README's smoke job has no `pytest checks/` step"
    return shlex.split(line.group(1))


def run_job(stack: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    words = job_command()
    assert words[:2] == [".venv/bin/pytest", "checks/"]
    words = [sys.executable, "-m", "pytest", str(ROOT / "checks"), *words[2:]]
    words = [str(stack) if w == "stack.toml" else w for w in words]
    return subprocess.run(
        words, cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env=os.environ
    )


def test_smoke_job_healthy_then_failing(testbed, fault, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    done = run_job(stack, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    reports = tmp_path / "reports"
    # The job publishes reports/ whole: one summary and one metrics file per stack.
    name = slug(testbed.project)
    validate_junit(reports / "junit.xml")
    assert json.loads((reports / f"summary-{name}.json").read_text())["status"] == "healthy"
    families = {
        f.name
        for f in text_string_to_metric_families((reports / f"stackcheck-{name}.prom").read_text())
    }
    assert "stackcheck_check_success" in families

    fault("backend-stopped")
    done = run_job(stack, tmp_path)
    assert done.returncode == 1
    validate_junit(reports / "junit.xml")
    summary = json.loads((reports / f"summary-{name}.json").read_text())
    assert summary["status"] == "unhealthy"
    assert summary["root_causes"] == ["backend:container_running"]
