"""How Docker engine failures read. As root the socket's permissions cannot be
denied, so this one case is built from the exception docker-py raises for it."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import requests

from stackcheck.config import Service, Stack, Timeouts
from stackcheck.probes.docker_probe import describe_engine_error
from stackcheck.probes.gather import DOCKER_KINDS, Need, gather


def _stack(host: str | None) -> Stack:
    return Stack(path=Path("s.toml"), name="s", compose_project="p", services={}, docker_host=host)


def test_permission_denied_names_socket_and_fix() -> None:
    exc = docker.errors.DockerException(
        "Error while fetching server API version: "
        "('Connection aborted.', PermissionError(13, 'Permission denied'))"
    )
    text = describe_engine_error(_stack("unix:///var/run/docker.sock"), exc)
    assert text.startswith(
        "permission denied on the Docker engine socket unix:///var/run/docker.sock"
    )
    assert "docker group" in text


def test_unreachable_names_the_address_without_library_noise() -> None:
    exc = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', "
        "FileNotFoundError(2, 'No such file or directory'))"
    )
    text = describe_engine_error(_stack("unix:///nowhere.sock"), exc)
    assert text.startswith("Docker engine unreachable at unix:///nowhere.sock: ")
    assert "\n" not in text


def test_advice_names_how_to_restore_sight() -> None:
    exc = docker.errors.DockerException("Error while fetching server API version: timed out")
    text = describe_engine_error(_stack("ssh://ops@prod"), exc)
    assert text.startswith("Docker engine unreachable at ssh://ops@prod: ")
    assert (
        "DOCKER_HOST" in text and "docker_host" in text and "docker -H ssh://ops@prod info" in text
    )


def test_an_api_error_quotes_the_engine_s_answer() -> None:
    response = requests.Response()
    response.status_code = 500
    exc = docker.errors.APIError(
        "500 Server Error", response, explanation="engine is shutting down"
    )
    text = describe_engine_error(_stack("unix:///var/run/docker.sock"), exc)
    assert text == "Docker engine at unix:///var/run/docker.sock answered: engine is shutting down"


def test_an_unreachable_engine_blinds_every_docker_probe_and_nothing_else(
    tmp_path: Path,
) -> None:
    # The real gathering against a socket nobody listens on: no Docker needed.
    socket = tmp_path / "nobody.sock"
    stack = Stack(
        path=tmp_path / "s.toml",
        name="s",
        compose_project="p",
        services={"db": Service("db", port=5432), "api": Service("api", depends_on=("db",))},
        docker_host=f"unix://{socket}",
        timeouts=Timeouts(probe_s=5.0, connect_s=1.0),
    )
    needs = {
        Need("container", "api"),
        Need("stats", "db"),
        Need("logs", "api"),
        Need("datafs", "db"),
        Need("net", "api", "db"),
        Need("command", "db", check="own", argv=("true",)),
    }
    assert {n.kind for n in needs} == DOCKER_KINDS
    facts = gather(stack, needs)
    found = [
        facts.containers["api"],
        facts.containers["db"],  # the hints read every involved service's container
        facts.stats["db"],
        facts.logs["api"],
        facts.datafs["db"],
        facts.net[("api", "db")],
        facts.commands[("own", "db")],
    ]
    for fact in found:
        assert fact.blind is not None and fact.blind.startswith(
            f"Docker engine unreachable at unix://{socket}: "
        ), fact
        # Could not check is not the stack's fault: no error is filed with it.
        assert getattr(fact, "error", None) is None, fact
    assert len({f.blind for f in found}) == 1
