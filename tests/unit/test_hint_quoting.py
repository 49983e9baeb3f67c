"""Every printed fix command is safe to paste: each value one shell word (issue 9, item 7).

test_report_hints.py proves one hostile health URL is one word for curl. Here
every command of every fix of every real check is filled with hostile values
wherever a value comes from outside (the compose project, the Docker host, the
container's compose labels and name, the health URL, PostgreSQL's user and
database, the data directory, every live value): each command must split, as a
shell splits it, into exactly the argv its template means, and, pasted into a
real shell (with recording stand-ins for docker, curl and grep), run nothing
else. The compose project and Docker host are rejected at load today; the quoting
does not rely on that. Then the same through a real run on fabricated facts: the
commands the terminal prints for a hostile health URL parse into curl's argv.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

import factbench
import pytest
from definitions import definitions
from reportbench import TESTBED, CheckRun

from stackcheck import payload as payloads
from stackcheck.config import Service, Stack
from stackcheck.definition import Check, Fix
from stackcheck.model import CheckRef
from stackcheck.probes.docker_probe import compose_command
from stackcheck.probes.gather import Need
from stackcheck.report import hints, registry
from stackcheck.report.hints import render
from stackcheck.where import needs_of, refs

pytest_plugins = ("pytester",)

CHECKS = definitions()
MARK = "{mark}"  # replaced by a path in the test's directory
# What a careless or hostile file or server may put in a value: command
# substitution old and new, command separators, background, quotes, globs,
# leading dashes.
NASTY = f"$(touch {MARK}) ;touch {MARK} `touch {MARK}` a&b|c -rf 'q\"*"
STUBS = ("docker", "docker-compose", "curl", "grep")
STUB = """#!/bin/sh
# Records its own argv (NUL-separated) and the engine it was given, in a file of
# its own: the two ends of a pipe run at once, and their writes would interleave.
{ printf '%s\\0' "${0##*/}" "DOCKER_HOST=${DOCKER_HOST-}" "$@"; printf '\\n'; } > "$STUB_LOG.$$"
"""


def hostile(what: str, mark: Path) -> str:
    return f"{what}-" + NASTY.replace(MARK, str(mark))


@pytest.fixture
def mark(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a printed command ran a command hidden in a value"


@pytest.fixture
def stack(mark: Path) -> Iterator[Stack]:
    # Built directly: load_stack would reject this project and host outright.
    user, dbname = hostile("user", mark), hostile("db", mark)
    dsn = f"postgresql://{quote(user, safe='')}@db:5432/{quote(dbname, safe='')}"
    found = Stack(
        Path("stack.toml"),
        "prod",
        hostile("project", mark),
        {
            "db": Service("db", postgres_dsn=dsn, port=5432),
            "backend": Service(
                "backend",
                depends_on=("db",),
                health_url=f"http://b:8000/health?a={hostile('url', mark)}",
                port=8000,
            ),
            "worker": Service("worker", depends_on=("db",)),
        },
        docker_host=f"tcp://h:2375/{hostile('host', mark)}",
    )
    registry.remember([found])
    yield found
    registry.remember([])


def labels(mark: Path) -> dict[str, str]:
    """The compose labels of a container that someone else created."""
    return {
        "com.docker.compose.version": "2.20.2",
        "com.docker.compose.project.working_dir": f"/srv/{hostile('dir', mark)}",
        "com.docker.compose.project.config_files": f"{hostile('a', mark)}.yml,b.yml",
    }


def failing_payload(stack: Stack, ref: CheckRef, check: Check, fix: Fix, mark: Path) -> Any:
    needs = {n for c in CHECKS.values() for r in refs(stack, c) for n in needs_of(r, c)}
    needs |= {Need("container", s) for s in stack.services}
    changes: dict[str, dict[str, Any]] = {}
    for service in stack.services:
        changes[f"container:{service}"] = {
            "name": hostile(f"{service}-container", mark),
            "compose_cmd": compose_command(labels(mark), stack.compose_project, stack),
        }
    changes["datafs:db"] = {"path": f"/var/lib/{hostile('data', mark)}"}
    facts = factbench.fabricate(stack, frozenset(needs), changes)
    built = payloads.build(ref, check, stack, facts, "failed", "broken", fix, [])
    # Every other live value a probe reported: hostile too.
    for key, value in built["context"].items():
        if isinstance(value, str) and key not in ("compose_cmd", "docker_cmd"):
            built["context"][key] = hostile(key, mark)
    return built


def intended(template: str, payload: Any, stack: Stack, ref: CheckRef) -> list[str]:
    """The argv ``template`` means with the payload's values, each value one word.

    Placeholders become inert tokens, the shell's own splitting is applied to
    the template, then each token is put back as the value it stands for.
    """
    context = payload["context"]
    raw = hints._from_stack_file(stack, ref)
    raw.update({k: str(v) for k, v in context.items() if v is not None and not isinstance(v, list)})
    raw.update(service=ref.service, **({"target": ref.target} if ref.target else {}))
    words_of = {
        "compose": shlex.split(context["compose_cmd"]),
        "docker": shlex.split(context["docker_cmd"]),
        "dependents": [s.name for s in stack.services.values() if ref.service in s.depends_on],
    }
    tokens = {name: f"QZ{n}ZQ" for n, name in enumerate([*raw, *words_of])}
    argv: list[str] = []
    for word in shlex.split(Template(template).safe_substitute(tokens)):
        whole = next((name for name in words_of if tokens[name] == word), None)
        if whole is not None:
            argv += words_of[whole]
            continue
        for name in raw:
            word = word.replace(tokens[name], raw[name])
        argv.append(word)
    return argv


def every_fix() -> Iterator[tuple[Check, Fix]]:
    for check in CHECKS.values():
        for fix in check.fixes:
            yield check, fix


def test_every_command_is_the_argv_it_means_and_runs_nothing_else(
    stack: Stack, mark: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in STUBS:
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}  # touch stays reachable
    seen = 0
    for check, fix in every_fix():
        for ref in refs(stack, check):
            built = failing_payload(stack, ref, check, fix, mark)
            hint = render(built)
            templates = [
                c.template
                for c in fix.commands
                if "$dependents" not in c.template or ref.service == "db"
            ]
            assert len(templates) == len(hint.commands), (ref.key, hint.commands)
            for template, (_, command) in zip(templates, hint.commands, strict=True):
                argv = intended(template, built, stack, ref)
                assert shlex.split(command) == argv, (ref.key, template, command)
                # A pasted command reaches only the stand-ins: never a real program.
                program = next(w for w in argv if not w.startswith("DOCKER_HOST="))
                assert program in STUBS, (ref.key, command)
                log = tmp_path / "argv.log"
                for old in tmp_path.glob("argv.log.*"):
                    old.unlink()
                done = subprocess.run(
                    ["bash", "-c", command],
                    env={**env, "STUB_LOG": str(log)},
                    cwd=tmp_path,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, (command, done.stderr)
                assert not mark.exists(), command
                records = [
                    r.split("\0")
                    for one in tmp_path.glob("argv.log.*")
                    for r in one.read_text().split("\0\n")[:-1]
                ]
                # Each program of the (pipe)line got the argv, and the engine, intended.
                head, _, tail = (
                    (argv[: argv.index("|")], "|", argv[argv.index("|") + 1 :])
                    if "|" in argv
                    else (argv, "", [])
                )
                host = ""
                if head[0].startswith("DOCKER_HOST="):
                    host, head = head[0].removeprefix("DOCKER_HOST="), head[1:]
                expected = [[head[0], f"DOCKER_HOST={host}", *head[1:]]]
                if tail:
                    expected.append([tail[0], "DOCKER_HOST=", *tail[1:]])
                assert sorted(records) == sorted(expected), command
                seen += 1
    assert seen > 40  # every template of every check, on every service it applies to
    assert "touch" in NASTY and "$(" in NASTY  # what was not run was there to be run


def test_values_reach_their_commands_whole(stack: Stack, mark: Path) -> None:
    # The values above did reach the commands (a hint that dropped them would pass).
    ref = CheckRef("prod", "http_health", "backend", None)
    check = CHECKS["http_health"]
    hint = render(failing_payload(stack, ref, check, check.fixes[0], mark))
    assert shlex.split(hint.commands[0][1])[:2] == ["curl", "-v"]
    assert shlex.split(hint.commands[0][1])[2].startswith("health_url-$(touch ")
    compose = shlex.split(hint.commands[1][1])
    assert compose[0] == f"DOCKER_HOST={stack.docker_host}"
    assert compose[1:5] == ["docker", "compose", "-p", stack.compose_project]


# -- Through a real run --------------------------------------------------------------


def test_a_run_prints_a_hostile_health_url_as_one_word_of_curl(checkrun: CheckRun) -> None:
    url = "http://127.0.0.1:18000/health?a=1&b=$(id);c=`id`|d>e"
    spec = {**TESTBED, "services": {**TESTBED["services"]}}
    spec["services"]["backend"] = {**TESTBED["services"]["backend"], "health_url": url}
    failing = {"status": 503, "body": '{"status":"unhealthy"}', "json_status": "unhealthy"}
    checkrun.scenario({"http:backend": {**failing, "url": url}}, stacks=[spec])
    result = checkrun.run("-rf")
    assert result.ret == 1, result.stdout.str()
    printed = [line.strip() for line in result.outlines if "curl -v" in line]
    # The FAILURES section and the Remediation section, at least.
    assert len(printed) >= 2, result.stdout.str()
    for line in printed:
        assert line.startswith("[read-only]"), line
        assert shlex.split(line.removeprefix("[read-only]")) == ["curl", "-v", url], line
    summary = checkrun.checks()["backend:http_health"]
    assert summary["role"] == "root_cause"
    assert shlex.split(summary["remediation"][0]) == ["curl", "-v", url]
