"""Nothing from the stack or the stack file is interpreted by a shell (issue 9, item 1).

Two lines of defence, each proven for real:

* At load: service names, ``depends_on`` targets and the compose project follow
  compose's grammar, so shell metacharacters and leading dashes never get past
  the stack file (one line, exit 4). The stack's display name is free text: it
  reaches no command, and a full run on the testbed with a hostile one runs
  nothing.
* In the container: the network probe's script (``network.SCRIPT``) gets names
  as positional arguments, quoted, and hands them to getent, ping and nc after
  ``--``, so even a name the grammar would never let through is an operand,
  never script text or an option. It runs here inside the testbed's backend
  container, with nc and, once, with nc hidden so that the bash ``/dev/tcp``
  fallback runs with the hostile target. Markers a shell would have created
  are looked for inside the container and on the host.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.models.containers import Container

from stackcheck.probes import network
from testbed import Testbed
from tests.checkrun import run_checks

TOKEN = uuid.uuid4().hex[:8]  # markers of this session only: others run similar tests
MARKERS = [f"/tmp/pwned-{TOKEN}", f"/tmp/pwned2-{TOKEN}", f"/tmp/pwned3-{TOKEN}"]
HOSTILE = [
    f"$(touch {MARKERS[0]})",
    f";touch {MARKERS[1]}",
    f"`touch {MARKERS[2]}`",
    "-rf",
    "`id`",
    "a&b",
]
# Test ids that stay the same from one collection to the next (TOKEN does not).
HOSTILE_IDS = ["subst-touch", "semicolon-touch", "backtick-touch", "dash-rf", "backtick-id", "amp"]
# Tools the script uses, but nc, linked into a directory that is the exec's PATH;
# and touch and id, so that a command injected there would run.
TOOLS_BUT_NC = (
    *("sh", "bash", "getent", "ping", "head", "cut", "tr", "tail", "timeout", "python3"),
    *("touch", "id"),
)


def host_markers() -> list[str]:
    return [m for m in MARKERS if Path(m).exists()]


def container_markers(container: Container) -> list[str]:
    argv = ["sh", "-c", 'for m in "$@"; do [ ! -e "$m" ] || echo "$m"; done', "sh", *MARKERS]
    result = container.exec_run(argv)
    assert result.exit_code == 0, result.output
    return result.output.decode().split()


@pytest.fixture
def backend(testbed: Testbed) -> Iterator[Container]:
    container = testbed.container("backend")
    assert container_markers(container) == [] and host_markers() == []
    yield container
    # Whatever happened, leave no marker behind for a later run to trip over.
    container.exec_run(["rm", "-f", "--", *MARKERS])


# -- At load ------------------------------------------------------------------------


def stack_text(project: str = "p", service: str = "api", depends_on: str = "db") -> str:
    """A stack file; the values are TOML basic strings (json.dumps writes those)."""
    return (
        f'[stack]\nname = "s"\ncompose_project = {json.dumps(project)}\n\n'
        f"[services.{json.dumps(service)}]\ndepends_on = [{json.dumps(depends_on)}]\n"
        'health_url = "http://127.0.0.1:1/health"\nport = 8080\n\n'
        '[services.db]\nport = 5432\npostgres_dsn = "postgresql://app@127.0.0.1:1/app"\n'
    )


@pytest.mark.parametrize("value", HOSTILE, ids=HOSTILE_IDS)
@pytest.mark.parametrize("where", ["service", "depends_on", "service and depends_on", "project"])
def test_a_hostile_name_is_rejected_at_load_in_one_line(
    where: str, value: str, tmp_path: Path
) -> None:
    if where == "service":
        text = stack_text(service=value, depends_on="db")
    elif where == "depends_on":
        text = stack_text(depends_on=value)
    elif where == "service and depends_on":
        # The case: a dependency on a service of that very name.
        text = stack_text(depends_on=value) + f"\n[services.{json.dumps(value)}]\nport = 1\n"
    else:
        text = stack_text(project=value)
    path = tmp_path / "stack.toml"
    path.write_text(text)
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0], run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert host_markers() == []


def test_a_hostile_stack_name_is_data_a_full_run_runs_nothing(
    testbed: Testbed, backend: Container, tmp_path: Path
) -> None:
    # Within the 100 characters a stack name may have.
    name = f"{HOSTILE[0]}{HOSTILE[1]} {HOSTILE[2]} -rf a&b"
    assert len(name) <= 100
    path = testbed.write_stack_file(tmp_path / "stack.toml")
    text = path.read_text().replace(f'name = "{testbed.project}"', f"name = {json.dumps(name)}", 1)
    assert json.dumps(name) in text
    path.write_text(text)
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.summary(name)["stacks"][0]["name"] == name
    assert host_markers() == []
    assert container_markers(backend) == []
    assert container_markers(testbed.container("db")) == []


# -- In the container: the network probe's script -----------------------------------


def script(
    container: Container, target: str, port: str = "8000", path: str | None = None
) -> dict[str, str]:
    """Run network.SCRIPT as the probe does (argv, no shell of ours); step -> its line."""
    argv = ["sh", "-c", network.SCRIPT, "stackcheck", target, port, "2"]
    result = container.exec_run(argv, environment={"PATH": path} if path else None)
    lines = result.output.decode(errors="replace").splitlines()
    found = {line.split(" ", 1)[0]: line for line in lines}
    assert set(found) == {"resolve", "ping", "port"}, lines
    return found


@pytest.mark.parametrize("target", ["-v", *HOSTILE], ids=["dash-v", *HOSTILE_IDS])
def test_the_probe_s_script_takes_a_hostile_target_as_an_operand(
    backend: Container, target: str
) -> None:
    # The real probe function, as a run calls it.
    facts = network.net_facts(backend, "backend", target, 8000, 2)
    assert facts.blind is None and facts.blind_for == {}, facts
    assert (facts.resolve, facts.ping, facts.port_open) == ("failed", "failed", "failed"), facts
    # The tools took the name as a host: an option ("-v" is verbose to both ping
    # and nc) would have been accepted or refused as an option, not looked up.
    assert target in facts.detail["ping"], facts.detail
    assert target in facts.detail["port"] or "could not connect" in facts.detail["port"]
    assert container_markers(backend) == [] and host_markers() == []


@pytest.fixture
def without_nc(backend: Container) -> Iterator[str]:
    """A directory inside the container with every tool of the script but nc."""
    where = f"/tmp/nonc-{TOKEN}"
    links = "; ".join(f'ln -sf "$(command -v {t})" {where}/{t}' for t in TOOLS_BUT_NC)
    result = backend.exec_run(["sh", "-c", f"mkdir -p {where} && {links}"])
    assert result.exit_code == 0, result.output
    yield where
    backend.exec_run(["rm", "-rf", "--", where])


def test_the_bash_fallback_takes_a_hostile_target_as_data(
    backend: Container, without_nc: str
) -> None:
    # The fallback does run there: it connects to the real database by name.
    healthy = script(backend, "db", "5432", path=without_nc)
    assert healthy["port"] == "port ok", healthy
    assert healthy["resolve"].startswith("resolve ok "), healthy
    for target in ["-v", *HOSTILE]:
        seen = script(backend, target, path=without_nc)
        assert seen["port"] == "port failed could not connect", (target, seen)
        assert seen["resolve"] == "resolve failed name does not resolve", (target, seen)
    assert container_markers(backend) == [] and host_markers() == []


def test_the_marker_check_sees_what_a_shell_would_do(backend: Container, without_nc: str) -> None:
    """Control: the vulnerable form of the fallback, with the same target, does create
    the marker, so the checks above would have seen an injection."""
    vulnerable = 'timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2"'
    argv = ["sh", "-c", vulnerable, "sh", HOSTILE[0], "8000"]
    backend.exec_run(argv, environment={"PATH": without_nc})
    assert container_markers(backend) == [MARKERS[0]]
    assert host_markers() == []  # it ran in the container, not here
