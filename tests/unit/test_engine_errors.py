"""How Docker engine failures read. As root the socket's permissions cannot be
denied, so this one case is built from the exception docker-py raises for it."""

from __future__ import annotations

from pathlib import Path

import docker.errors

from stackcheck.config import Stack
from stackcheck.probes.docker_probe import describe_engine_error


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
