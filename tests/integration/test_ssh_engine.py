"""The checks over SSH (issue 10): a real sshd in front of this machine's engine.

One container (the remote test host's image, testbed/images.py) runs three
sshd's on loopback ports Docker picks, each with a key generated here and the
host key pinned in a known_hosts file written here (never learnt on contact);
its docker CLI reaches the testbed's engine through the mounted socket, so the
stack seen over SSH is the very testbed the local run sees:

- the main sshd (sshd's defaults, MaxSessions 10): a healthy run over SSH must
  give the local run's verdicts, in one login;
- MaxSessions 1: the sessions past the first are refused, for real;
- a PATH without docker: ``docker system dial-stdio`` is missing there.

Each SSH failure (refused key, unknown and changed host key, a port that
accepts TCP but never speaks SSH, MaxSessions exhausted, dial-stdio missing)
must end in exit 6: the engine-based checks "could not check" with the one
line naming the host and the fix; nothing is blamed on the stack.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testbed import images
from tests.checkrun import CheckRun, check_ids, run_checks

EXIT_UNKNOWN = 6
USER = "root"
SSHD = """\
Port {port}
HostKey /run/keys/host_key
AuthorizedKeysFile /run/keys/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
AllowTcpForwarding local
X11Forwarding no
MaxSessions {sessions}
PidFile /run/sshd-{port}.pid
{extra}
"""
# The verdicts are under test here, not the speed (bench/ measures that): room
# for a loaded CI machine, where an SSH login alone can take seconds.
TIMEOUTS = "[timeouts]\nprobe_s = 20\nconnect_s = 10\n"
PORTS = {"main": 22, "one_session": 2201, "no_docker": 2202}


def _keypair() -> tuple[bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def _docker(*argv: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"docker {argv[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _speaks_ssh(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
        s.settimeout(1)
        return s.recv(8).startswith(b"SSH-")
    return False


@dataclass
class Sshd:
    name: str
    ports: dict[str, int]
    keys: Path
    host_public: bytes

    def known_hosts(self, port: int, public: bytes | None = None) -> str:
        return f"[127.0.0.1]:{port} {(public or self.host_public).decode()}\n"

    def logins(self) -> int:
        done = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=30, check=False
        )
        return (done.stdout + done.stderr).count("Accepted publickey for")


@pytest.fixture(scope="module")
def sshd(testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """The sshd container in front of the testbed's engine; removed after the module."""
    # Any image with sshd and a docker CLI will do; by default the remote test host's.
    image = os.environ.get("STACKCHECK_SSHD_IMAGE") or images.build_remote()
    keys = tmp_path_factory.mktemp("sshd-keys")
    host_private, host_public = _keypair()
    client_private, client_public = _keypair()
    _write(keys / "host_key", host_private)
    _write(keys / "id_ed25519", client_private)
    _write(keys / "authorized_keys", client_public, 0o644)
    configs = {
        "main": SSHD.format(port=22, sessions=10, extra=""),
        "one_session": SSHD.format(port=2201, sessions=1, extra=""),
        # Non-interactive logins get this PATH (SetEnv overrides sshd's default).
        "no_docker": SSHD.format(port=2202, sessions=10, extra="SetEnv PATH=/nonexistent"),
    }
    for which, text in configs.items():
        _write(keys / f"{which}.conf", text, 0o644)
    name = f"sc-ssh-{uuid.uuid4().hex[:8]}"
    socket_path = "/var/run/docker.sock"
    _docker(
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "stackcheck.test=ssh-engine",
        *(a for port in PORTS.values() for a in ("-p", f"127.0.0.1::{port}")),
        "-v",
        f"{keys}:/run/keys:ro",
        "-v",
        f"{socket_path}:/var/run/docker.sock",
        "--entrypoint",
        "sh",
        image,
        "-c",
        "mkdir -p /run/sshd && /usr/sbin/sshd -f /run/keys/one_session.conf && "
        "/usr/sbin/sshd -f /run/keys/no_docker.conf && "
        "exec /usr/sbin/sshd -D -e -f /run/keys/main.conf",
    )
    try:
        ports = {}
        for which, inner in PORTS.items():
            published = _docker("port", name, f"{inner}/tcp").split()[0]
            ports[which] = int(published.rsplit(":", 1)[1])
        until = time.monotonic() + 30
        while not all(_speaks_ssh(p) for p in ports.values()):
            if time.monotonic() > until:
                pytest.fail(f"sshd in {name} did not answer: {_docker('logs', name)[-500:]}")
            time.sleep(0.2)
        yield Sshd(name, ports, keys, host_public)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60, check=False)


def ssh_stack_file(
    testbed,
    directory: Path,
    port: int,
    known_hosts: str,
    key: Path,
    extra: str = "",
) -> Path:
    """The testbed's stack file with docker_host over SSH and an [ssh] table."""
    directory.mkdir(parents=True, exist_ok=True)
    path = testbed.write_stack_file(directory / "stack.toml")
    _write(directory / "known_hosts", known_hosts, 0o644)
    text = path.read_text()
    line = f'compose_project = "{testbed.project}"\n'
    assert line in text
    ssh = (
        f'\n[ssh]\nidentity_file = "{key}"\nknown_hosts = "known_hosts"\n'
        f"{extra or 'connect_timeout_s = 10'}\n\n{TIMEOUTS}\n[services."
    )
    text = text.replace(line, line + f'docker_host = "ssh://{USER}@127.0.0.1:{port}"\n', 1)
    path.write_text(text.replace("\n[services.", ssh, 1))
    return path


def assert_could_not_check(run: CheckRun, stack: Path, *needles: str) -> str:
    """Exit 6: every engine-based check could not check, with one line holding
    the needles; the others pass; nothing failed. Returns that line."""
    engine_checks = check_ids(stack, engine_only=True)
    where = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == EXIT_UNKNOWN, where
    assert run.failed() == set(), run.outcomes
    assert run.passed() == check_ids(stack) - engine_checks, run.outcomes
    assert run.errors() == engine_checks, run.outcomes
    lines = set()
    # The host checks ride the same login, so they could not check too (asserted
    # above), but with their own line when the login works and the host's commands
    # do not (dial-stdio missing: no PATH, so no ps either).
    for test_id in (t for t in engine_checks if "[@host]" not in t):
        # "could not check SERVICE:CHECK: <the line>", the line the same for every check
        found = [
            # (JUnit's message attribute quotes it: 'failed on setup with "…"')
            line[line.index(needles[0]) :].removesuffix('"')
            for line in run.messages[test_id].splitlines()
            if needles[0] in line
        ]
        assert found, (test_id, run.messages[test_id])
        lines.update(found)
    for line in lines:
        for needle in needles:
            assert needle in line, (needle, line)
    assert len({line[:100] for line in lines}) == 1, lines  # the same line for every check
    line = max(lines, key=len)
    assert "Traceback" not in run.stdout + run.stderr
    assert run.summary(load_name(stack))["status"] == "unknown"
    return line


def load_name(stack: Path) -> str:
    from stackcheck.config import load_stack

    return load_stack(stack).name


def test_healthy_run_over_ssh_gives_the_local_verdicts_in_one_login(
    testbed, sshd: Sshd, tmp_path: Path
) -> None:
    local = testbed.write_stack_file(tmp_path / "stack-local.toml")
    local.write_text(local.read_text().replace("\n[services.", f"\n{TIMEOUTS}\n[services.", 1))
    port = sshd.ports["main"]
    remote = ssh_stack_file(
        testbed, tmp_path / "ssh", port, sshd.known_hosts(port), sshd.keys / "id_ed25519"
    )
    here = run_checks("--stack", str(local), tmp_path=tmp_path / "local")
    before = sshd.logins()
    there = run_checks("--stack", str(remote), tmp_path=tmp_path / "remote")
    assert here.returncode == 0, here.stdout[-3000:]
    # The host checks read the machine SSH logs in to: here a container whose
    # sshd fronts this machine's engine socket, with no dockerd of its own (and no
    # /var/lib/docker). So the engine's verdicts are the local ones, and
    # host_engine_running fails, truly (host_disk cannot measure a missing path).
    engine = "test_host_engine_running[@host]"
    assert {k: v for k, v in there.outcomes.items() if "[@host]" not in k} == {
        k: v for k, v in here.outcomes.items() if "[@host]" not in k
    }, there.stdout[-3000:] + there.stderr[-2000:]
    assert there.outcomes[engine] == "failed"
    assert there.outcomes["test_host_memory[@host]"] == "passed"
    assert f"no dockerd process runs on {USER}@127.0.0.1:{port}" in there.messages[engine]
    assert there.returncode == 1
    assert there.summary(load_name(remote))["root_causes"] == ["@host:host_engine_running"]
    # One SSH connection for the whole run, every probe through it.
    assert sshd.logins() - before == 1


def test_a_refused_key_is_one_could_not_check_line(testbed, sshd: Sshd, tmp_path: Path) -> None:
    port = sshd.ports["main"]
    wrong, _ = _keypair()
    key = _write(tmp_path / "wrong_key", wrong)
    stack = ssh_stack_file(testbed, tmp_path / "s", port, sshd.known_hosts(port), key)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert_could_not_check(
        run, stack, f"SSH to root@127.0.0.1:{port} refused the login", "authorized_keys"
    )


def test_an_unknown_host_key_is_never_accepted(testbed, sshd: Sshd, tmp_path: Path) -> None:
    port = sshd.ports["main"]
    key = sshd.keys / "id_ed25519"
    stack = ssh_stack_file(testbed, tmp_path / "s", port, "", key)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    line = assert_could_not_check(
        run, stack, f"SSH host key of root@127.0.0.1:{port} is not in", "ssh-keyscan"
    )
    assert "never trusted" in line
    assert (tmp_path / "s" / "known_hosts").read_text() == ""  # nothing learnt


def test_a_changed_host_key_is_refused(testbed, sshd: Sshd, tmp_path: Path) -> None:
    port = sshd.ports["main"]
    _, other = _keypair()
    stack = ssh_stack_file(
        testbed, tmp_path / "s", port, sshd.known_hosts(port, other), sshd.keys / "id_ed25519"
    )
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert_could_not_check(run, stack, f"SSH host key of root@127.0.0.1:{port} does NOT match")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_port_that_never_speaks_ssh_is_bounded_and_named(
    testbed, sshd: Sshd, silent_port: int, tmp_path: Path
) -> None:
    stack = ssh_stack_file(
        testbed,
        tmp_path / "s",
        silent_port,
        sshd.known_hosts(silent_port),
        sshd.keys / "id_ed25519",
        extra="connect_timeout_s = 1",
    )
    run = run_checks("--stack", str(stack), tmp_path=tmp_path, timeout=60)
    assert_could_not_check(
        run,
        stack,
        f"SSH to root@127.0.0.1:{silent_port}: the port accepts TCP but did not speak SSH "
        "within 1 s",
    )


def test_maxsessions_exhausted_is_named(testbed, sshd: Sshd, tmp_path: Path) -> None:
    port = sshd.ports["one_session"]
    stack = ssh_stack_file(
        testbed, tmp_path / "s", port, sshd.known_hosts(port), sshd.keys / "id_ed25519"
    )
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    # The first session works; the probes that need a second at once are refused.
    assert run.returncode == EXIT_UNKNOWN, run.stdout[-3000:]
    assert run.failed() == set(), run.outcomes
    refused = [m for m in run.messages.values() if "MaxSessions" in m]
    assert refused, run.outcomes
    line = next(x for x in refused[0].splitlines() if "MaxSessions" in x)
    assert f"SSH server root@127.0.0.1:{port} refused a new session" in line
    assert "Traceback" not in run.stdout + run.stderr


def test_dial_stdio_missing_on_the_remote_is_named(testbed, sshd: Sshd, tmp_path: Path) -> None:
    port = sshd.ports["no_docker"]
    stack = ssh_stack_file(
        testbed, tmp_path / "s", port, sshd.known_hosts(port), sshd.keys / "id_ed25519"
    )
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert_could_not_check(
        run, stack, f"SSH to root@127.0.0.1:{port} works, but `docker system dial-stdio` failed"
    )
    assert "install the docker CLI" in run.stdout


def test_no_zombie_or_leftover_processes(testbed, sshd: Sshd, tmp_path: Path) -> None:
    """The SSH engine spawns nothing: a run leaves no child processes behind."""
    port = sshd.ports["main"]
    stack = ssh_stack_file(
        testbed, tmp_path / "s", port, sshd.known_hosts(port), sshd.keys / "id_ed25519"
    )
    code = (
        "import os, pytest, sys\n"
        f"rc = pytest.main(['checks/', '-q', '-p', 'no:cacheprovider', '--stack', {str(stack)!r},"
        f" '--reports-dir', {str(tmp_path / 'reports')!r}])\n"
        "me, kids = str(os.getpid()), []\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if fields[1] == me:\n"
        "        kids.append((pid, fields[0]))\n"
        "print('CHILDREN', kids)\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The SSH host here runs no dockerd (a proxy to this machine's socket), so
    # host_engine_running fails (1); on a loaded machine some probes may pass the
    # deadline (6). Never a crash.
    assert done.returncode in (1, 6), done.stdout[-3000:]
    assert "CHILDREN []" in done.stdout, done.stdout[-500:]


def test_a_tunnel_reaches_a_port_as_the_engine_host_sees_it(
    testbed, sshd: Sshd, tmp_path: Path
) -> None:
    """docker_probe.tunnel: a direct-tcpip channel over the engine's SSH connection."""
    from stackcheck.config import load_stack
    from stackcheck.probes import docker_probe
    from stackcheck.probes.deadline import Deadline
    from stackcheck.probes.sshengine import EngineUnreachable

    port = sshd.ports["main"]
    stack = load_stack(
        ssh_stack_file(
            testbed, tmp_path / "s", port, sshd.known_hosts(port), sshd.keys / "id_ed25519"
        )
    )
    deadline = Deadline(20)
    try:
        channel = docker_probe.tunnel(stack, "127.0.0.1", 22, deadline)  # its own sshd
        try:
            assert channel.recv(8).startswith(b"SSH-2.0")
        finally:
            channel.close()
        with pytest.raises(EngineUnreachable, match=r"could not connect to 127\.0\.0\.1:1 "):
            docker_probe.tunnel(stack, "127.0.0.1", 1, deadline)
    finally:
        docker_probe.close_engines()
