"""Another deployment: services 'api' and 'postgres' on other ports, no code changed."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testbed import CANARY_PASSWORD, images
from tests.checkrun import run_checks

PROJECT = "stackcheck-renamed"
COMPOSE = [
    "docker-compose",
    "-p",
    PROJECT,
    "-f",
    str(Path(__file__).parent / "renamed/docker-compose.yml"),
]
STACK = f"""
[stack]
name = "renamed"
compose_project = "{PROJECT}"

[services.api]
depends_on = ["postgres"]
health_url = "http://127.0.0.1:38000/health"
port = 8000

[services.postgres]
postgres_dsn = "postgresql://scheduler@127.0.0.1:35432/scheduler"
port = 5432
"""


def compose(*args: str) -> None:
    env = {**os.environ, **images.build_all(), "TESTBED_DB_PASSWORD": CANARY_PASSWORD}
    subprocess.run([*COMPOSE, *args], env=env, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def renamed(testbed: object) -> Iterator[None]:  # testbed: the engine and images are ready
    compose("up", "-d")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get("http://127.0.0.1:38000/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "renamed stack did not become healthy"
            time.sleep(0.5)
        yield
    finally:
        compose("down", "-v", "-t", "1")


def test_other_names_and_ports_all_pass(renamed: None, tmp_path: Path) -> None:
    stack = tmp_path / "stack.toml"
    stack.write_text(STACK)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "test_net_port[api->postgres]" in run.passed()
    assert "test_pg_connections[postgres]" in run.passed()
    assert "test_pg_data_disk[postgres]" in run.passed()
    assert "test_http_health[api]" in run.passed()
    assert not any("backend" in k or "[db" in k for k in run.outcomes)


def test_other_names_stopped_database(renamed: None, tmp_path: Path) -> None:
    stack = tmp_path / "stack.toml"
    stack.write_text(STACK)
    compose("stop", "-t", "1", "postgres")
    try:
        run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    finally:
        compose("up", "-d", "--force-recreate", "postgres")
    assert run.returncode == 1
    assert {
        "test_container_running[postgres]",
        "test_pg_ready[postgres]",
        # A stopped container cannot be looked into: its data filesystem neither.
        "test_pg_data_disk[postgres]",
        "test_net_resolve[api->postgres]",
        "test_http_health[api]",
    } <= run.failed()
    assert "test_container_running[api]" in run.passed()
    assert run.errors() == set(), {k: run.messages[k] for k in run.errors()}
