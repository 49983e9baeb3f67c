"""The remote test host: the testbed stack on an engine the checker reaches only by SSH.

One host for the module (testbed/remote.py; about 25 s to bring up with the
images cached, most of it loading the stack's images into the inner engine).
Name and SSH port: STACKCHECK_REMOTE_NAME / STACKCHECK_REMOTE_SSH_PORT; under
pytest-xdist each worker gets its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import Testbed
from testbed.remote import RemoteHost, RemoteTestbed, remote_down, remote_up

LOCK_WAIT_S = 600.0


def _remote_settings() -> tuple[str, int]:
    name = os.environ.get("STACKCHECK_REMOTE_NAME", "sc-dind-test")
    port = int(os.environ.get("STACKCHECK_REMOTE_SSH_PORT", "12223"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        name, port = f"{name}-{worker}", port + 1 + int(worker[2:])
    return name, port


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"stackcheck-remote-{name}.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"remote host {name} stayed locked by {path}")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def remote(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteTestbed]:
    """The testbed inside a remote test host, healthy; host and its images removed after.

    Requests the local ``testbed`` for its opt-in and engine set-up: the remote
    host runs on the same local engine.
    """
    name, port = _remote_settings()
    state = tmp_path_factory.mktemp("remote") / name
    host = RemoteHost(name, port, state_dir=state)
    bed = RemoteTestbed(host, project=testbed.project)
    with _lock(name):
        try:
            remote_up(host, bed)
            yield bed
        finally:
            if not os.environ.get("STACKCHECK_TESTBED_KEEP"):
                remote_down(host, bed, volumes=True)


def _ssh(host: RemoteHost, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        host.ssh_argv(*command), capture_output=True, text=True, timeout=30, check=False
    )


def test_only_ssh_is_published_and_the_stack_only_inside(remote: RemoteTestbed) -> None:
    host = remote.host
    outer = subprocess.run(
        ["docker", "port", host.name], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert [line for line in outer if line] == [f"22/tcp -> 127.0.0.1:{host.ssh_port}"]
    # Inside, the stack publishes on the remote host's own loopback only.
    for service in ("db", "backend"):
        bindings = remote.container(service).attrs["HostConfig"]["PortBindings"]
        assert bindings, service
        for ports in bindings.values():
            assert {p["HostIp"] for p in ports} == {"127.0.0.1"}, (service, bindings)
    assert remote.health() == "200"


def test_ssh_reaches_the_inner_engine_with_the_pinned_host_key(remote: RemoteTestbed) -> None:
    host = remote.host
    done = _ssh(host, "docker", "ps", "--format", '{{.Label "com.docker.compose.service"}}')
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["backend", "db"]
    # The key and the pinned host key are private to the state directory.
    assert stat.S_IMODE(host.state.stat().st_mode) == 0o700
    for path in (host.identity_file, host.known_hosts):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_ssh_refuses_an_unknown_host_key_and_a_stranger_key(
    remote: RemoteTestbed, tmp_path: Path
) -> None:
    host = remote.host
    other = RemoteHost(host.name, host.ssh_port, state_dir=tmp_path / "other")
    other.state.mkdir(mode=0o700)
    # A host key other than the pinned one: verification fails, nothing runs.
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hk")], check=True
    )
    wrong = (tmp_path / "hk.pub").read_text().split()
    other.known_hosts.write_text(f"[127.0.0.1]:{host.ssh_port} {wrong[0]} {wrong[1]}\n")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other.identity_file)],
        check=True,
    )
    refused = _ssh(other, "true")
    assert refused.returncode == 255
    assert "host key" in refused.stderr.lower(), refused.stderr
    # The right host key but a key the host never authorized: denied.
    other.known_hosts.write_text(host.known_hosts.read_text())
    denied = _ssh(other, "true")
    assert denied.returncode == 255
    assert "permission denied" in denied.stderr.lower(), denied.stderr


def test_stack_file_points_at_the_ssh_engine_only(remote: RemoteTestbed, tmp_path: Path) -> None:
    stack = tomllib.loads(remote.write_stack_file(tmp_path / "stack.toml").read_text())
    host = remote.host
    assert stack["stack"]["docker_host"] == f"ssh://root@127.0.0.1:{host.ssh_port}"
    assert stack["ssh"] == {
        "identity_file": str(host.identity_file),
        "known_hosts": str(host.known_hosts),
    }
    # Nothing in it is asked from this machine: a health URL or DSN on this
    # host's loopback would reach a local testbed, not the remote one.
    for service in stack["services"].values():
        assert service.get("health_via", "exec") == "exec"
        assert service.get("postgres_via", "exec") == "exec"
