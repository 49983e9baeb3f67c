"""An exec's output sent with the engine's answer head is never lost, locally.

docker-py reads an exec's output from the socket itself, after http.client has
read the answer's head through a buffered file: output that arrived in the
same packet as the head went into that buffer and was lost (docker-py issue
3332; here about 1 exec in 800 under load, and a data-disk probe that "printed
nothing" in CI). A fake engine on a unix socket sends the head and the output
in one ``sendall``, which makes the loss certain: docker-py's own adapter
loses it, ``docker_probe.connect``'s keeps it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from fakeengine import EXEC_ERR, EXEC_OUT, serve_docker_api

from stackcheck.config import Stack
from stackcheck.probes import docker_probe
from stackcheck.probes.deadline import Deadline


def serve_one(conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as reader:
        serve_docker_api(reader, conn.sendall)


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def container(client: Any) -> Any:
    attrs = {"Id": "c1", "Name": "/c1", "Config": {"Tty": False}}
    return docker.models.containers.Container(
        attrs=attrs, client=client, collection=client.containers
    )


def test_docker_pys_own_adapter_loses_output_sent_with_the_head(engine_socket: str) -> None:
    """The race itself, made certain: if this ever passes, docker-py fixed it."""
    client = docker.DockerClient(base_url=engine_socket, version="1.41", timeout=5)
    assert container(client).exec_run(["df"]).output == b""


def test_the_probes_client_keeps_output_sent_with_the_head(
    engine_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stack = Stack(Path("s.toml"), "s", "s", {}, docker_host=engine_socket)
    client = docker_probe.connect(stack, Deadline(5))
    assert container(client).exec_run(["df"]) == (0, EXEC_OUT + EXEC_ERR)
    out, code = docker_probe._exec_bounded(client, container(client), ["df"], 100)
    assert (out, code) == (EXEC_OUT, 0)  # streamed, standard output only
