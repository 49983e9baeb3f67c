"""The SSH engine's session pool gives every session back (issue 10).

An in-process SSH server (paramiko's server side, on a loopback port of this
test) answers ``docker system dial-stdio`` sessions with a tiny Docker API: a
version, an exec whose output is streamed on the hijacked connection (then
the session ends, as the real dial-stdio does when the engine closes it), a
container's logs and its inspection. The checker's side is the product's own:
``sshengine.SSHEngine`` (login, pool, session accounting) and the probes'
stream readers. The server counts its open sessions, so the test sees what
sshd sees.

The exec's output is sent in the same packet as the answer's head, as a quick
command's output arrives when the checker reads the head late: docker-py reads
an exec's output from the channel itself, so whatever the HTTP layer read past
the head would be lost (an exec that "printed nothing").

Before the fix, every exec stream kept its pooled connection for the rest of
the run (docker-py never gives back a hijacked one, and its close() refuses an
SSH stream), and docker-py's logs() held one connection while it asked for a
second: after four exec streams, or with four log reads at once, every probe
waited for a session until the deadline ("all 4 SSH sessions … stayed busy").
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from docker.models.containers import Container
from fakeengine import LOG_LINES, serve_docker_api

from stackcheck.config import SSHSettings
from stackcheck.probes import docker_probe, inside, sshengine, streams
from stackcheck.probes.deadline import Deadline


@dataclass
class FakeEngineHost:
    """sshd + dial-stdio + the engine, in one thread per session."""

    port: int
    key: Path
    known_hosts: Path
    open_sessions: int = 0
    most_sessions: int = 0
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def session_started(self) -> None:
        with self.lock:
            self.open_sessions += 1
            self.most_sessions = max(self.most_sessions, self.open_sessions)

    def session_ended(self) -> None:
        with self.lock:
            self.open_sessions -= 1


class _Server(paramiko.ServerInterface):  # type: ignore[misc]
    def __init__(self, host: FakeEngineHost, client_key: paramiko.PKey) -> None:
        self.host = host
        self.client_key = client_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.get_base64() == self.client_key.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if command != sshengine.DIAL.encode():
            return False
        self.host.session_started()
        threading.Thread(target=_dial_stdio, args=(self.host, channel), daemon=True).start()
        return True


def _dial_stdio(host: FakeEngineHost, channel: paramiko.Channel) -> None:
    """One session: HTTP keep-alive until the client closes it or an exec is attached."""
    reader = channel.makefile("rb")

    def seen(request: str) -> None:
        with host.lock:
            host.requests.append(request)

    try:
        serve_docker_api(reader, channel.sendall, seen)
    except OSError:
        pass
    finally:
        host.session_ended()
        with contextlib.suppress(EOFError, OSError):  # the client may be gone already
            channel.send_exit_status(0)
            channel.close()


def _keypair(directory: Path) -> tuple[Path, paramiko.PKey]:
    key = Ed25519PrivateKey.generate()
    path = directory / "id_ed25519"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path, paramiko.Ed25519Key.from_private_key_file(str(path))


@pytest.fixture
def engine_host(tmp_path: Path) -> Iterator[FakeEngineHost]:
    (tmp_path / "host").mkdir()
    (tmp_path / "client").mkdir()
    _, host_key = _keypair(tmp_path / "host")
    client_path, client_key = _keypair(tmp_path / "client")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    host = FakeEngineHost(port, client_path, known)
    transports: list[paramiko.Transport] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as sshd does
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            transport.start_server(server=_Server(host, client_key))
            transports.append(transport)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        stop.set()
        thread.join(5)
        for transport in transports:
            transport.close()
        listener.close()


def _engine(host: FakeEngineHost, seconds: float) -> sshengine.SSHEngine:
    settings = SSHSettings(identity_file=host.key, known_hosts=host.known_hosts)
    engine = sshengine.SSHEngine(f"ssh://tester@127.0.0.1:{host.port}", settings)
    engine.deadline = Deadline(seconds)
    engine.login(5)
    engine.start_docker()
    return engine


def _container(engine: sshengine.SSHEngine) -> Any:
    assert engine.docker is not None
    attrs = {"Id": "c1", "Name": "/c1", "Config": {"Tty": False}}
    return Container(attrs=attrs, client=engine.docker, collection=engine.docker.containers)


def test_every_exec_stream_and_log_read_gives_its_session_back(
    engine_host: FakeEngineHost,
) -> None:
    engine = _engine(engine_host, seconds=4)
    container = _container(engine)
    try:
        # Three times as many streams as sessions, one after another: each one
        # must be back in the pool before the next can have it.
        for _ in range(3 * sshengine.MAX_SESSIONS):
            ran = inside.run(container, ["true"])
            assert (ran.exit_code, ran.stdout, ran.stderr) == (0, b"out\n", b"err\n")
            bounded = docker_probe._exec_bounded(engine.docker, container, ["true"], 100)
            assert bounded == (b"out\n", 0)
            assert container.exec_run(["true"]) == (0, b"out\nerr\n")
            assert docker_probe.read_newest_logs(container, 50, 1) == LOG_LINES
    finally:
        engine.close()
    assert engine_host.most_sessions <= sshengine.MAX_SESSIONS
    # The tty is known from the container's attributes: logs never inspect it.
    assert "GET /containers/c1/json" not in engine_host.requests


def test_log_reads_at_once_never_wait_for_each_other(engine_host: FakeEngineHost) -> None:
    engine = _engine(engine_host, seconds=4)
    container = _container(engine)
    readers = 3 * sshengine.MAX_SESSIONS
    start = threading.Barrier(readers)
    read: list[bytes | None] = []
    failed: list[BaseException] = []

    def read_logs() -> None:
        start.wait()
        try:
            read.append(docker_probe.read_newest_logs(container, 50, 1))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=read_logs) for _ in range(readers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        engine.close()
    assert failed == []
    assert read == [LOG_LINES] * readers
    assert engine_host.most_sessions <= sshengine.MAX_SESSIONS


class _Refusing:
    """A docker-py stream over SSH: its own close() refuses."""

    def __init__(self) -> None:
        self.channel = SimpleNamespace(closed=False)
        self.channel.close = lambda: setattr(self.channel, "closed", True)
        self.response_closed = False
        fp = SimpleNamespace(channel=self.channel)
        self._response = SimpleNamespace(
            raw=SimpleNamespace(_fp=SimpleNamespace(fp=fp)), close=self._close_response
        )

    def _close_response(self) -> None:
        self.response_closed = True

    def close(self) -> None:
        raise RuntimeError("Cancellable streams not supported for the SSH protocol")


def test_a_stream_over_ssh_is_closed_and_its_connection_given_back() -> None:
    stream = _Refusing()
    streams.close_stream(stream)
    assert stream.channel.closed
    assert stream.response_closed


def test_a_local_stream_is_closed_its_own_way_and_given_back() -> None:
    closed: list[str] = []
    stream = SimpleNamespace(
        close=lambda: closed.append("stream"),
        _response=SimpleNamespace(raw=None, close=lambda: closed.append("response")),
    )
    streams.close_stream(stream)
    assert closed == ["stream", "response"]
    streams.close_stream(iter([]))  # no response at all: nothing to give back, no error


def test_the_connection_sends_small_packets_at_once(engine_host: FakeEngineHost) -> None:
    """TCP_NODELAY, as OpenSSH sets it: each small write of an API call would
    otherwise wait for the peer's delayed acknowledgement (bench/ measures it)."""
    engine = _engine(engine_host, seconds=4)
    try:
        assert engine.client is not None
        sock = engine.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        engine.close()


def test_a_lost_connection_fails_a_host_command_in_ssh_s_words(
    engine_host: FakeEngineHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host checks' testinfra backend on the engine's login, once the login is lost."""
    from stackcheck.config import Stack, Timeouts
    from stackcheck.probes import host

    engine = _engine(engine_host, seconds=4)
    stack = Stack.__new__(Stack)
    object.__setattr__(stack, "docker_host", engine.address)
    object.__setattr__(stack, "ssh", engine.settings)
    object.__setattr__(stack, "timeouts", Timeouts())
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(sshengine.ENGINES, "login", lambda *args: engine)
    try:
        on_host = host._host(stack, engine.deadline)
        assert engine.client is not None
        transport = engine.client.get_transport()
        transport.sock.shutdown(socket.SHUT_RDWR)  # the connection is lost
        for _ in range(200):
            if not transport.is_active():
                break
            time.sleep(0.01)
        with pytest.raises(paramiko.SSHException, match="not active"):
            on_host.run("true")
    finally:
        engine.close()
