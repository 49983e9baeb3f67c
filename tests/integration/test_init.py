"""`stackcheck init` on the testbed's compose file writes a stack file the suite passes on."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from testbed import Testbed
from testbed.stack import COMPOSE_FILE
from tests.checkrun import run_checks


def test_init_on_the_testbed_compose_file_gives_a_passing_stack_file(
    testbed: Testbed, tmp_path: Path
) -> None:
    # The environment the testbed's compose file is started with, as an
    # engineer's shell would have it: images, ports, and the password.
    env = {
        **os.environ,
        **testbed.images(),
        "TESTBED_DB_PASSWORD": testbed.password,
        "TESTBED_DB_PORT": str(testbed.db_port),
        "TESTBED_BACKEND_PORT": str(testbed.backend_port),
    }
    out = tmp_path / "stack.toml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stackcheck",
            "init",
            "-f",
            str(COMPOSE_FILE),
            "-p",
            testbed.project,
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert testbed.password not in text
    assert "resolved by `docker-compose config`" in text or "read directly" in text
    services = tomllib.loads(text)["services"]
    assert services["backend"]["health_url"] == testbed.health_url
    assert services["db"]["postgres_dsn"] == testbed.dsn
    run = run_checks("--stack", str(out), tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.outcomes.values()) <= {"passed", "skipped"}
    assert list(run.outcomes.values()).count("passed") >= 15
