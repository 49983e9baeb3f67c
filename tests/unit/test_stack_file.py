"""A stack file the suite cannot use: exit 4 and one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcheck.config import SCHEMA, load_stack
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
    "gaps not a list": (
        GOOD.replace("port = 8080", 'port = 8080\ngaps = "net_ping"'),
        "'services.api.gaps' must be a list",
    ),
    "gaps not strings": (
        GOOD.replace("port = 8080", "port = 8080\ngaps = [1]"),
        "'services.api.gaps' must be a list of strings",
    ),
    "gaps name an unknown check": (
        GOOD.replace("port = 8080", 'port = 8080\ngaps = ["net_pong"]'),
        "gaps name unknown checks: net_pong",
    ),
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


def one_line_error(path: Path, tmp_path: Path) -> str:
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    lines: list[str] = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    return lines[0]


LONG_NAME = "a" * 100_000


@pytest.mark.parametrize(
    "name",
    ["$(touch {marker})", "-rf", "a b", LONG_NAME],
    ids=["command", "option", "space", "long"],
)
def test_a_service_name_compose_cannot_have_is_rejected(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    name = name.format(marker=marker)
    path = tmp_path / "stack.toml"
    # A TOML basic string, escaped for TOML: the name reaches the loader unchanged.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        GOOD.replace("[services.api]", f'[services."{quoted}"]').replace(
            'depends_on = ["postgres"]\n', ""
        )
    )
    line = one_line_error(path, tmp_path)
    assert line.startswith(f"ERROR: {path}: service name "), line
    assert "is not a compose service name" in line
    # At most 64 characters of the name are echoed, whatever its length.
    assert name[:64] in line
    assert "a" * 65 not in line and len(line) < len(str(path)) + 250
    assert not marker.exists()


def test_the_data_disk_threshold_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD + "\n[thresholds]\ndata_disk_percent = 95\n")
    run = run_checks("--stack", str(path), "--collect-only", "-q", tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_pg_data_disk[postgres]" in run.stdout
    assert load_stack(path).thresholds.data_disk_percent == 95


PERCENTS = sorted(k for k in SCHEMA["thresholds"] if k.endswith("_percent"))


def test_every_percent_threshold_is_known() -> None:
    assert "data_disk_percent" in PERCENTS and len(PERCENTS) >= 4


@pytest.mark.parametrize("key", PERCENTS)
def test_a_percentage_above_100_is_rejected(key: str, tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD + f"\n[thresholds]\n{key} = 100.5\n")
    line = one_line_error(path, tmp_path)
    assert line == f"ERROR: {path}: 'thresholds.{key}' must be at most 100"
    path.write_text(GOOD + f"\n[thresholds]\n{key} = 100\n")
    assert getattr(load_stack(path).thresholds, key) == 100
