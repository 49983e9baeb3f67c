"""`stackcheck init`: a stack file from a compose file.

On the testbed's compose file and two written the way real projects write
them (tests/unit/compose/: build contexts, profiles, env files,
deploy.replicas, long port syntax, an unpublished database). Every generated
file is loaded with the suite's own loader. The real testbed run on a
generated file is tests/integration/test_init.py.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stackcheck import stackfile
from stackcheck.cli import main
from stackcheck.config import load_stack

HERE = Path(__file__).resolve().parent
COMPOSE = HERE / "compose"
TESTBED_COMPOSE = HERE.parent.parent / "testbed" / "docker-compose.yml"
ENV_SECRET = "envfile-Secret-91"


@pytest.fixture(autouse=True)
def no_compose_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the files themselves, whatever compose client this machine has
    (the client path has its own test, with a stand-in client)."""
    monkeypatch.setattr(stackfile, "_compose_config", lambda path, project: None)
    for name in ("COMPOSE_PROJECT_NAME", "TESTBED_BACKEND_PORT", "TESTBED_DB_PORT", "API_PORT"):
        monkeypatch.delenv(name, raising=False)


def generated(compose: Path, tmp_path: Path, project: str | None = None) -> dict[str, Any]:
    """The stack file `init` writes, as TOML, after the suite's loader accepted it."""
    out = tmp_path / "stack.toml"
    args = ["init", "-f", str(compose), "-o", str(out)]
    assert main([*args, "-p", project] if project else args) == 0
    load_stack(out)
    return tomllib.loads(out.read_text())


def test_the_testbed_compose_file_gives_the_testbed_stack_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_DB_PASSWORD", "canary-in-env")
    doc = generated(TESTBED_COMPOSE, tmp_path, "residency-scheduler-testbed")
    assert doc["stack"] == {
        "name": "residency-scheduler-testbed",
        "compose_project": "residency-scheduler-testbed",
    }
    assert doc["services"] == {
        "db": {"postgres_dsn": "postgresql://scheduler@127.0.0.1:15432/scheduler", "port": 5432},
        "backend": {
            "depends_on": ["db"],
            "health_url": "http://127.0.0.1:18000/health",
            "port": 8000,
        },
    }
    assert "canary-in-env" not in (tmp_path / "stack.toml").read_text()


def test_published_ports_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_BACKEND_PORT", "28000")
    monkeypatch.setenv("TESTBED_DB_PORT", "25432")
    doc = generated(TESTBED_COMPOSE, tmp_path, "tb")
    assert doc["services"]["backend"]["health_url"] == "http://127.0.0.1:28000/health"
    assert doc["services"]["db"]["postgres_dsn"].endswith("@127.0.0.1:25432/scheduler")


def test_a_web_shop_with_build_contexts_env_files_profiles_and_replicas(tmp_path: Path) -> None:
    doc = generated(COMPOSE / "webshop" / "docker-compose.yml", tmp_path)
    text = (tmp_path / "stack.toml").read_text()
    assert doc["stack"]["compose_project"] == "webshop"  # its `name:`
    services = doc["services"]
    # adminer is behind a profile: not started by default, so left out, saying so.
    assert set(services) == {"api", "worker", "postgres", "cache"}
    assert "left out service adminer: in a compose profile" in text
    # The health URL its own healthcheck fetches, on the port it is published on.
    assert services["api"] == {
        "depends_on": ["postgres", "cache"],
        "health_url": "http://127.0.0.1:8081/api/healthz",
        "port": 8080,
    }
    # The worker shares the database's env file: not taken for a database.
    assert services["worker"] == {"depends_on": ["postgres", "cache"]}
    assert "# deploy.replicas = 3: every replica is checked" in text
    # PostgreSQL by its image; user and database from the api's URL, never its password.
    assert services["postgres"] == {
        "postgres_dsn": "postgresql://shop@127.0.0.1:5433/shop",
        "port": 5432,
    }
    assert services["cache"] == {"port": 6379}
    assert ENV_SECRET not in text and "devpw" not in text


def test_an_unpublished_postgis_is_recognised_but_not_pointed_at_blindly(tmp_path: Path) -> None:
    doc = generated(COMPOSE / "geo" / "compose.yaml", tmp_path)
    text = (tmp_path / "stack.toml").read_text()
    assert doc["stack"]["compose_project"] == "geo"  # compose's: the directory
    assert doc["services"]["web"] == {
        "depends_on": ["app"],
        "health_url": "http://127.0.0.1:80/status",
        "port": 80,
    }
    assert doc["services"]["app"] == {"depends_on": ["gisdb"], "port": 8000}
    # 127.0.0.1:5432 could be another server: the DSN stays a comment.
    assert doc["services"]["gisdb"] == {"port": 5432}
    assert '# postgres_dsn = "postgresql://geo@127.0.0.1:5432/geodata"' in text
    assert "is not published on the host" in text
    assert "changeme" not in text


def test_every_guess_says_so(tmp_path: Path) -> None:
    generated(COMPOSE / "webshop" / "docker-compose.yml", tmp_path)
    for line in (tmp_path / "stack.toml").read_text().splitlines():
        if line.startswith(("health_url", "port", "compose_project")):
            assert "  # " in line, line
        if line.startswith("postgres_dsn"):
            continue  # its comment is the next line
        assert "\x1b" not in line


def test_it_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "stack.toml"
    out.write_text("# mine\n")
    args = ["init", "-f", str(TESTBED_COMPOSE), "-o", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == f"stackcheck init: {out} exists: pass --force to overwrite it\n"
    assert out.read_text() == "# mine\n"
    assert main([*args, "--force"]) == 0
    load_stack(out)


def test_standard_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["init", "-f", str(TESTBED_COMPOSE), "-p", "tb", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert tomllib.loads(out)["stack"]["compose_project"] == "tb"
    assert not (tmp_path / "stack.toml").exists()


def test_the_compose_clients_resolution_is_used_when_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real _compose_config, with a stand-in client on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    client = bin_dir / "docker-compose"
    client.write_text(
        "#!/bin/sh\n"
        "/bin/cat <<'EOF'\n"
        "services:\n"
        "  api:\n"
        "    image: app:1.2\n"
        "    ports: ['127.0.0.1:9999:8000/tcp']\n"
        "EOF\n"
    )
    client.chmod(client.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))  # no `docker`: only this client
    compose = tmp_path / "app" / "compose.yaml"
    compose.parent.mkdir()
    compose.write_text("services:\n  other: {image: x}\n")
    out = tmp_path / "s.toml"
    assert main(["init", "-f", str(compose), "-o", str(out)]) == 0
    text = out.read_text()
    assert "resolved by `docker-compose config`" in text
    assert tomllib.loads(text)["services"] == {
        "api": {"health_url": "http://127.0.0.1:9999/health", "port": 8000}
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- just\n- a list\n", "has no 'services' mapping"),
        ("services: [a, b]\n", "has no 'services' mapping"),
        ("services:\n  a: {image: x\n", "is not valid YAML at line"),
        ("services:\n  'bad name!': {image: x}\n", "declares no usable service"),
        ("services:\n  a: !!python/object/apply:os.system ['true']\n", "is not valid YAML"),
    ],
)
def test_unusable_compose_files_are_one_line(
    content: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(content)
    assert main(["init", "-f", str(compose), "-p", "x", "-o", str(tmp_path / "s.toml")]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "s.toml").exists()


def test_hostile_names_and_values_cannot_break_out_of_the_file(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n"
        '  "evil\\n[stack]\\nname = \\"x\\"": {image: x}\n'
        "  db:\n"
        '    image: "postgres:16\\n[thresholds]\\u001b[31m"\n'
        "    ports: ['127.0.0.1:5999:5432']\n"
        "  api:\n"
        "    image: app\n"
        "    environment:\n"
        '      DATABASE_URL: "postgresql://us%22er:pw-Hostile-1@db:5432/d%0Ab"\n'
        "    depends_on: [db, ghost]\n"
    )
    doc = generated(compose, tmp_path, "x")
    text = (tmp_path / "stack.toml").read_text()
    assert set(doc) == {"stack", "services"} and set(doc["services"]) == {"db", "api"}
    assert doc["services"]["api"]["depends_on"] == ["db"]  # no unknown service
    assert "pw-Hostile-1" not in text and "\x1b" not in text
    assert "left out service 'evil\\n[stack]" in text  # shown escaped, as a comment
    # The user from the URL is quoted in the DSN, not spliced into it.
    assert doc["services"]["db"]["postgres_dsn"] == "postgresql://us%22er@127.0.0.1:5999/d%0Ab"


def test_an_alias_bomb_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levels = ["a: &a ['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x']"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        levels.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{', '.join(['*' + prev] * 9)}]")
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "x-bomb:\n  " + "\n  ".join(levels) + "\nservices:\n  api:\n    image: app\n"
        "    environment: {BOMB: 1}\n    labels: *i\n"
    )
    # 9^9 strings if walked whole: bounded, so it either finishes or refuses in one line.
    code = main(["init", "-f", str(compose), "-p", "x", "-o", str(tmp_path / "s.toml")])
    err = capsys.readouterr().err
    assert code == 2 and "too deeply nested or too large" in err and err.count("\n") == 1


def test_too_large_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = tmp_path / "compose.yaml"
    with compose.open("w") as handle:
        handle.write("services:\n  a: {image: x}\n")
        handle.write("#" * (stackfile.MAX_COMPOSE_BYTES + 1))
    assert main(["init", "-f", str(compose), "-p", "x", "-o", str(tmp_path / "s.toml")]) == 2
    assert "larger than" in capsys.readouterr().err


def test_no_compose_file_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 2
    assert "no compose file in" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A:?must}", {}, ""),
        ("${A:+set}", {"A": "v"}, "set"),
        ("$$A", {"A": "1"}, "$A"),
        ("$A/x", {"A": "1"}, "1/x"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert stackfile.interpolate(text, env) == expected


@pytest.mark.parametrize(
    ("entry", "port"),
    [
        ("8080", stackfile.Port(8080, None, None)),
        ("127.0.0.1:18000:8000/tcp", stackfile.Port(8000, 18000, "127.0.0.1")),
        ("9000:80", stackfile.Port(80, 9000, None)),
        ("[::1]:5433:5432", stackfile.Port(5432, 5433, "::1")),
        ("53:53/udp", stackfile.Port(53, 53, None, "udp")),
        (
            {"target": 80, "published": "8080", "host_ip": "10.0.0.1"},
            stackfile.Port(80, 8080, "10.0.0.1"),
        ),
        (8000, stackfile.Port(8000, None, None)),
    ],
)
def test_port_syntaxes(entry: Any, port: stackfile.Port) -> None:
    assert stackfile.parse_ports([entry]) == [port]


@pytest.mark.parametrize("entry", ["8000-8010:8000-8010", "x:y", {"published": 1}, None, 70000])
def test_ports_it_cannot_read_are_left_out(entry: Any) -> None:
    assert stackfile.parse_ports([entry]) == []


def test_the_loader_accepts_what_init_writes_for_every_example(tmp_path: Path) -> None:
    for compose in [TESTBED_COMPOSE, *COMPOSE.glob("*/*.y*ml")]:
        out = tmp_path / f"{compose.parent.name}.toml"
        assert main(["init", "-f", str(compose), "-p", "x", "-o", str(out)]) == 0
        assert os.access(out, os.R_OK)
        load_stack(out)
