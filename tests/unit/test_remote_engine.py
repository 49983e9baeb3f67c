"""Remote engines (issue 10): the stack file's ssh:// and [ssh] keys, TLS for tcp://,
hints that carry the engine, and the one line each SSH failure reads as.

The SSH failures are built from paramiko's own exception classes here; the
integration tests (tests/integration/test_ssh_engine.py) produce each for real.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import docker.errors
import docker.tls
import paramiko
import pytest
import requests

from stackcheck.config import SSHSettings, Stack, StackFileError, load_stack
from stackcheck.probes import docker_probe, sshengine
from stackcheck.probes.sshengine import (
    EngineUnreachable,
    Target,
    describe_connect_error,
    describe_dial_error,
    describe_session_error,
)

HEAD = """\
[stack]
name = "s"
compose_project = "p"
{extra}
[services.api]
port = 8080
"""


def load(tmp_path: Path, extra: str) -> Stack:
    path = tmp_path / "stack.toml"
    path.write_text(HEAD.format(extra=extra))
    return load_stack(path)


def refused(tmp_path: Path, extra: str) -> str:
    with pytest.raises(StackFileError) as caught:
        load(tmp_path, extra)
    message = str(caught.value)
    assert "\n" not in message
    return message.split(": ", 1)[1]


def test_ssh_table_paths_resolve_against_the_stack_file(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        'docker_host = "ssh://ops@db1.example:2222"\n'
        '[ssh]\nidentity_file = "keys/id"\nknown_hosts = "/etc/kh"\nconnect_timeout_s = 2\n',
    )
    assert stack.ssh == SSHSettings(
        identity_file=tmp_path / "keys" / "id", known_hosts=Path("/etc/kh"), connect_timeout_s=2.0
    )
    home = load(tmp_path, '[ssh]\nidentity_file = "~/.ssh/check"\n').ssh.identity_file
    assert home == Path("~/.ssh/check").expanduser()
    assert load(tmp_path, "").ssh == SSHSettings()


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('[ssh]\nidentiy_file = "k"\n', "unknown key 'ssh.identiy_file'"),
        ("[ssh]\nconnect_timeout_s = 0\n", "'ssh.connect_timeout_s' must be greater than 0"),
        ('[ssh]\nknown_hosts = ""\n', "'ssh.known_hosts' must be a path of 1 to 4096"),
        ('[ssh]\nidentity_file = "a\\nb"\n', "'ssh.identity_file' must be a path"),
        ('docker_host = "ssh://ops:hunter2@h"\n', "holds a password"),
        ('docker_host = "ssh:///nohost"\n', "names no host"),
        ('docker_host = "ssh://h:0"\n', "port 0"),
        ('docker_host = "ssh://h:99999"\n', "not a valid address"),
        ('docker_host = "ftp://h"\n', "must start with one of unix://, tcp://, ssh://"),
    ],
)
def test_bad_remote_engine_keys_are_one_line(tmp_path: Path, extra: str, error: str) -> None:
    message = refused(tmp_path, extra)
    assert error in message
    assert "hunter2" not in message


# -- TLS for tcp://, exactly as docker.from_env reads the environment -----------


def test_tcp_with_tls_env_builds_a_verifying_tls_config(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    stack = Stack(Path("s"), "s", "p", {}, docker_host="tcp://engine.example:2376")
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path), "DOCKER_HOST": "x"}
    kwargs = docker_probe.client_kwargs(stack, env)
    assert kwargs["base_url"] == "tcp://engine.example:2376"  # the stack file wins
    tls = kwargs["tls"]
    assert isinstance(tls, docker.tls.TLSConfig)
    assert tls.verify is True and tls.ca_cert == str(tmp_path / "ca.pem")
    assert tls.cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def test_without_tls_env_there_is_no_tls(tmp_path: Path) -> None:
    stack = Stack(Path("s"), "s", "p", {}, docker_host="tcp://engine.example:2375")
    assert docker_probe.client_kwargs(stack, {}) == {"base_url": "tcp://engine.example:2375"}
    local = Stack(Path("s"), "s", "p", {})
    assert docker_probe.client_kwargs(local, {"DOCKER_HOST": "tcp://e:1"}) == {
        "base_url": "tcp://e:1"
    }


def test_missing_tls_files_are_one_line_naming_the_fix(tmp_path: Path) -> None:
    stack = Stack(Path("s"), "s", "p", {}, docker_host="tcp://engine.example:2376")
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path / "none")}
    with pytest.raises(docker.errors.TLSParameterError) as caught:
        docker_probe.client_kwargs(stack, env)
    text = docker_probe.describe_engine_error(stack, caught.value)
    assert text.startswith("TLS settings for the Docker engine at tcp://engine.example:2376")
    assert "DOCKER_CERT_PATH" in text and "\n" not in text


# -- Hints carry the engine; never a password ---------------------------------


def test_compose_hint_for_an_ssh_engine_carries_it() -> None:
    stack = Stack(Path("s"), "s", "p", {}, docker_host="ssh://ops@db1.example:2222")
    labels = {"com.docker.compose.version": "2.20.0"}
    assert docker_probe.compose_command(labels, "p", stack) == (
        "DOCKER_HOST=ssh://ops@db1.example:2222 docker compose -p p"
    )


def test_a_password_in_docker_host_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://ops:s3cret-pw@engine:2375")
    stack = Stack(Path("s"), "s", "p", {})
    assert "s3cret" not in docker_probe.docker_command(stack)
    assert "s3cret" not in docker_probe.describe_engine_error(stack, OSError("refused"))


# -- Each SSH failure: one line naming the host and the fix --------------------

TARGET = Target("ops", "db1.example", 2222)


class _Key:
    """What BadHostKeyException reads of a key."""

    def __init__(self, text: str) -> None:
        self.text = text

    def get_base64(self) -> str:
        return self.text


KEYED = SSHSettings(identity_file=Path("/k/id"), known_hosts=Path("/k/kh"))


def test_target_reads_user_host_and_port() -> None:
    assert Target.parse("ssh://ops@db1.example:2222") == TARGET
    assert str(Target.parse("ssh://ops@h")) == "ops@h"
    assert str(TARGET) == "ops@db1.example:2222"
    assert Target.parse("ssh://h").user  # the local user, as ssh does


CONNECT_ERRORS: dict[str, tuple[BaseException, tuple[str, ...]]] = {
    "unknown host key": (
        paramiko.SSHException("Server '[db1.example]:2222' not found in known_hosts"),
        ("is not in /k/kh", "never trusted", "ssh-keyscan -p 2222 db1.example >> /k/kh"),
    ),
    "changed host key": (
        paramiko.BadHostKeyException("db1.example", _Key("AAAAnew"), _Key("AAAAold")),
        ("does NOT match the one in /k/kh", "verify the new key out of band"),
    ),
    "refused key": (
        paramiko.AuthenticationException("Authentication failed."),
        (
            "refused the login (the key /k/id is not accepted)",
            "~ops/.ssh/authorized_keys on db1.example",
        ),
    ),
    "no key at all": (
        paramiko.SSHException("No authentication methods available"),
        ("refused the login", "authorized_keys"),
    ),
    "encrypted key": (
        paramiko.PasswordRequiredException("private key file is encrypted"),
        ("is encrypted", "ssh-add"),
    ),
    "silent peer": (
        paramiko.SSHException("Error reading SSH protocol banner"),
        ("accepts TCP but did not speak SSH within 2.5 s", "connect_timeout_s"),
    ),
    "stalled login": (
        sshengine._Stalled(),
        ("accepts TCP but did not speak SSH within 2.5 s",),
    ),
    "slow login": (
        sshengine._Stalled(spoke=True),
        ("the server answered but the key exchange and login did not finish within 2.5 s",),
    ),
    "tcp timeout": (TimeoutError("timed out"), ("no answer within 2.5 s",)),
    "refused port": (
        paramiko.ssh_exception.NoValidConnectionsError({("10.0.0.1", 2222): OSError("x")}),
        ("connection refused", "port 2222"),
    ),
    "unknown name": (socket.gaierror(-2, "Name or service not known"), ("cannot resolve",)),
    "missing key file": (
        FileNotFoundError(2, "No such file or directory", "/k/id"),
        ("cannot read /k/id", "[ssh] identity_file"),
    ),
}


@pytest.mark.parametrize("case", sorted(CONNECT_ERRORS))
def test_each_ssh_connect_failure_is_one_line_naming_host_and_fix(case: str) -> None:
    exc, expected = CONNECT_ERRORS[case]
    text = describe_connect_error(TARGET, KEYED, exc, 2.5)
    assert "\n" not in text and len(text) < 400, text
    assert "db1.example" in text
    for part in expected:
        assert part in text, (part, text)


def test_the_defaults_are_named_when_no_ssh_table_is_given() -> None:
    exc = paramiko.SSHException("Server 'h' not found in known_hosts")
    assert "~/.ssh/known_hosts" in describe_connect_error(TARGET, SSHSettings(), exc, 1)
    refused_key = paramiko.AuthenticationException("Authentication failed.")
    assert "no key of the SSH agent or ~/.ssh is accepted" in describe_connect_error(
        TARGET, SSHSettings(), refused_key, 1
    )


def test_an_exhausted_maxsessions_names_the_setting() -> None:
    text = describe_session_error(TARGET, paramiko.ChannelException(2, "Connect failed"))
    assert "MaxSessions" in text and "db1.example" in text and "\n" not in text


@pytest.mark.parametrize(
    ("status", "stderr", "expected"),
    [
        (127, "bash: line 1: docker: command not found\n", "install the docker CLI"),
        (1, 'unknown command "dial-stdio" for "docker system"', "install the docker CLI"),
        (
            1,
            "permission denied while trying to connect to the Docker daemon socket",
            "add ops to the docker group on db1.example",
        ),
        (1, "Cannot connect to the Docker daemon", "`docker info` answers for ops"),
    ],
)
def test_dial_stdio_failing_remotely_is_named(status: int, stderr: str, expected: str) -> None:
    text = describe_dial_error(TARGET, status, stderr)
    assert expected in text and "\n" not in text
    assert " ".join(stderr.split()) in text


def test_what_the_remote_host_says_is_one_line_without_controls() -> None:
    hostile = "\x1b[2J\x1b]0;owned\x07docker: not found\r\nsecond line" + "x" * 5000
    text = describe_dial_error(TARGET, 127, hostile)
    assert "\x1b" not in text and "\r" not in text and "\n" not in text
    assert "docker: not found second line" in text and len(text) < 700


def test_the_one_line_survives_requests_wrapping() -> None:
    # What requests raises when a session the pool opened was refused.
    inner = EngineUnreachable("SSH server ops@db1.example:2222 refused a new session")
    wrapped = requests.exceptions.ConnectionError(inner)
    try:
        try:
            raise inner
        except EngineUnreachable:
            raise docker.errors.DockerException("Error while fetching server API version") from (
                wrapped
            )
    except docker.errors.DockerException as exc:
        stack = Stack(Path("s"), "s", "p", {}, docker_host="ssh://ops@db1.example:2222")
        assert docker_probe.describe_engine_error(stack, exc) == str(inner)


def test_tunnel_refuses_a_local_engine() -> None:
    from stackcheck.probes.deadline import Deadline

    with pytest.raises(EngineUnreachable, match="is not ssh://"):
        docker_probe.tunnel(Stack(Path("s"), "s", "p", {}), "db", 5432, Deadline(1))


def test_paramiko_is_not_imported_until_an_ssh_engine_is_used() -> None:
    code = (
        "import sys, stackcheck.plugin, stackcheck.probes.gather, docker\n"
        "assert 'paramiko.client' not in sys.modules, 'loaded early'\n"
        "import paramiko\n"
        "assert paramiko.SSHClient.__name__ == 'SSHClient'\n"
        "assert 'paramiko.client' in sys.modules\n"
        "import docker.transport.sshconn as c\n"
        "assert c.paramiko.RejectPolicy is paramiko.RejectPolicy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
