"""A Docker engine over tcp:// with TLS: the local verdicts, and TLS failures as blind spots.

This machine's engine listens on its unix socket only, and restarting it with
a TCP listener would take every other test's engine away. So a TLS terminator
runs in the test, on 127.0.0.1: it demands a client certificate signed by the
test's CA (as `dockerd --tlsverify` does), and passes the bytes on to the
engine's socket, exec streams included. The checker does what it does with any
`tcp://` engine: docker-py's TLS client with DOCKER_TLS_VERIFY=1 and
DOCKER_CERT_PATH's ca.pem, cert.pem and key.pem; memory and CPU by exec (only
a unix socket is read on the host); no host checks (no way onto the host).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.checkrun import CheckRun, run_checks
from tests.integration.test_ssh_engine import assert_could_not_check

ENGINE_SOCKET = "/var/run/docker.sock"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """A CA, and certificates it signs, written where Docker's clients look for them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _certificate(name, self.key)

    def write(self, directory: Path, subject: str, server: bool = False) -> Path:
        """``directory`` with ca.pem (this CA), cert.pem and key.pem (``subject``'s)."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        signed = _certificate(subject, key, (self.name, self.key), server=server)
        (directory / "ca.pem").write_bytes(_pem(self.certificate))
        (directory / "cert.pem").write_bytes(_pem(signed))
        (directory / "key.pem").write_bytes(_key_pem(key))
        return directory


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Authority]]:
    """A TLS terminator in front of this machine's engine: (port, the server's certs, its CA)."""
    authority = Authority("stackcheck test CA")
    certs = authority.write(tmp_path_factory.mktemp("tls-server"), "127.0.0.1", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    context.load_verify_locations(certs / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # as dockerd --tlsverify
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(raw: socket.socket) -> None:
        try:
            client = context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect(ENGINE_SOCKET)
        back = threading.Thread(target=_pump, args=(engine, client), daemon=True)
        back.start()
        _pump(client, engine)
        back.join(30)
        client.close()
        engine.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            raw.settimeout(None)
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], certs, authority
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def tls_stack(testbed, tmp_path: Path, port: int) -> Path:  # type: ignore[no-untyped-def]
    stack = testbed.write_stack_file(tmp_path / "stack-tls.toml")
    text = stack.read_text()
    stack.write_text(
        text.replace("[stack]\n", f'[stack]\ndocker_host = "tcp://127.0.0.1:{port}"\n', 1)
    )
    return stack


def tls_env(certs: Path) -> dict[str, str]:
    return {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs), "DOCKER_HOST": ""}


def not_host(run: CheckRun) -> dict[str, str]:
    return {name: outcome for name, outcome in run.outcomes.items() if "[@host]" not in name}


def both_ways(
    testbed, tls_engine: tuple[int, Path, Authority], tmp_path: Path
) -> tuple[CheckRun, CheckRun]:
    """The checks through the local socket, then through the TLS endpoint."""
    port, _, authority = tls_engine
    client = authority.write(tmp_path / "client", "on-call")
    local = testbed.write_stack_file(tmp_path / "stack-local.toml")
    here = run_checks("--stack", str(local), tmp_path=tmp_path / "local")
    there = run_checks(
        "--stack",
        str(tls_stack(testbed, tmp_path, port)),
        tmp_path=tmp_path / "tls",
        env=tls_env(client),
    )
    return here, there


def test_a_tls_engine_gives_the_local_verdicts(
    testbed, tls_engine: tuple[int, Path, Authority], tmp_path: Path
) -> None:
    here, there = both_ways(testbed, tls_engine, tmp_path)
    assert here.returncode == 0, here.stdout[-3000:]
    assert there.returncode == 0, there.stdout[-3000:] + there.stderr[-2000:]
    assert not_host(there) == not_host(here)
    # No way onto a tcp:// engine's host: its checks do not apply, and say so.
    assert not any("[@host]" in name for name in there.outcomes), there.outcomes


def test_a_stopped_backend_over_tls_fails_as_locally(
    testbed, fault, tls_engine: tuple[int, Path, Authority], tmp_path: Path
) -> None:
    fault("backend-stopped")
    here, there = both_ways(testbed, tls_engine, tmp_path)
    assert here.returncode == there.returncode == 1
    assert there.failed() == here.failed() != set()
    assert not_host(there) == not_host(here)


@pytest.mark.parametrize("way", ["another CA", "no client certificate"])
def test_a_tls_failure_is_one_could_not_check_line(
    testbed, tls_engine: tuple[int, Path, Authority], tmp_path: Path, way: str
) -> None:
    port, server_certs, _ = tls_engine
    if way == "another CA":
        client = Authority("somebody else's CA").write(tmp_path / "client", "on-call")
    else:  # the engine's CA trusted, but no certificate of our own to show
        client = tmp_path / "client"
        client.mkdir()
        (client / "ca.pem").write_bytes((server_certs / "ca.pem").read_bytes())
    stack = tls_stack(testbed, tmp_path, port)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path / "tls", env=tls_env(client))
    said = (
        f"TLS with the Docker engine at tcp://127.0.0.1:{port} failed"
        if way == "another CA"
        else f"TLS settings for the Docker engine at tcp://127.0.0.1:{port} are unusable"
    )
    assert_could_not_check(run, stack, said, "DOCKER_CERT_PATH", "ca.pem")
