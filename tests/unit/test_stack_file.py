"""A stack file the suite cannot use: exit 4 and one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkrun import run_checks

GOOD = """\
[stack]
name = "s"
compose_project = "p"

[services.api]
depends_on = ["postgres"]
health_url = "http://127.0.0.1:1/health"
port = 8080

[services.postgres]
postgres_dsn = "postgresql://app@127.0.0.1:1/app"
port = 5432
"""

CASES = {
    "broken TOML": ("[stack\nname = 1", "invalid TOML"),
    "unknown service key": (
        GOOD.replace("health_url", "helth_url"),
        "unknown key 'services.api.helth_url'",
    ),
    "unknown stack key": (GOOD.replace('name = "s"', 'name = "s"\nprojet = "x"'), "'stack.projet'"),
    "unknown table": (GOOD + "\n[threshold]\nmemory_percent = 80\n", "unknown table 'threshold'"),
    "unknown threshold": (
        GOOD + "\n[thresholds]\nmemory_pct = 80\n",
        "unknown key 'thresholds.memory_pct'",
    ),
    "wrong type": (GOOD.replace("port = 8080", 'port = "8080"'), "'services.api.port' must be"),
    "port out of range": (GOOD.replace("port = 8080", "port = 80800"), "between 1 and 65535"),
    "boolean for a number": (
        GOOD + "\n[timeouts]\nprobe_s = true\n",
        "'timeouts.probe_s' must be",
    ),
    "missing compose_project": (
        GOOD.replace('compose_project = "p"\n', ""),
        "'stack.compose_project'",
    ),
    "depends on unknown service": (
        GOOD.replace('["postgres"]', '["postgress"]'),
        "unknown service 'postgress'",
    ),
    "not an http URL": (
        GOOD.replace("http://127.0.0.1:1/health", "127.0.0.1/health"),
        "http(s) URL",
    ),
    "bad regex": (GOOD + '\n[logs]\npatterns = ["(unclosed"]\n', "invalid regex"),
    "no services": ('[stack]\nname = "s"\ncompose_project = "p"\n', "no services"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_stack_file_is_a_one_line_usage_error(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / "stack.toml"
    path.write_text(text)
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"ERROR: {path}: "), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in run.stdout + run.stderr


def test_missing_stack_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    run = run_checks("--stack", str(missing), tmp_path=tmp_path)
    assert run.returncode == 4
    assert run.stderr.strip() == f"ERROR: {missing}: stack file not found"


def test_bad_dsn_does_not_echo_its_password(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(
        GOOD.replace(
            '"postgresql://app@127.0.0.1:1/app"', '"host=x password=s3cret-canary port=\'"'
        )
    )
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4
    assert "not a valid libpq DSN" in run.stderr
    assert "s3cret-canary" not in run.stdout + run.stderr


def test_good_file_with_other_names_collects_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD)
    run = run_checks("--stack", str(path), "--collect-only", "-q", tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for test_id in (
        "test_container_running[api]",
        "test_container_running[postgres]",
        "test_net_port[api->postgres]",
        "test_pg_ready[postgres]",
        "test_http_health[api]",
    ):
        assert test_id in run.stdout
    assert "test_pg_ready[api]" not in run.stdout
    assert "test_http_health[postgres]" not in run.stdout
