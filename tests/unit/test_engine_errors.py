"""How Docker engine failures read. As root the socket's permissions cannot be
denied, so this one case is built from the exception docker-py raises for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.errors
import pytest
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


def test_a_tls_failure_names_tls_and_the_certificates_not_the_library() -> None:
    import ssl

    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    verify.verify_message = "unable to get local issuer certificate"
    wrapped = requests.exceptions.SSLError(
        "HTTPSConnectionPool(host='10.0.0.5', port=2376): Max retries exceeded with url: "
        "/version (Caused by SSLError(...))"
    )
    wrapped.__context__ = verify
    exc = docker.errors.DockerException(f"Error while fetching server API version: {wrapped}")
    exc.__cause__ = wrapped
    text = describe_engine_error(_stack("tcp://10.0.0.5:2376"), exc)
    assert text.startswith(
        "TLS with the Docker engine at tcp://10.0.0.5:2376 failed "
        "(unable to get local issuer certificate): "
    )
    assert "DOCKER_CERT_PATH" in text and "ca.pem" in text and "cert.pem" in text
    assert "HTTPSConnectionPool" not in text and "\n" not in text


def test_a_tls_engine_is_verified_against_its_own_ca_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests lets REQUESTS_CA_BUNDLE win over a session's CA file (requests issue
    3829); the engine's client keeps DOCKER_CERT_PATH's ca.pem."""
    import docker.tls

    from stackcheck.probes.docker_probe import _engine_client

    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("not read here\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/system.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/system.pem")

    def tls() -> docker.tls.TLSConfig:
        cert = (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
        return docker.tls.TLSConfig(client_cert=cert, ca_cert=str(tmp_path / "ca.pem"), verify=True)

    def verify_used(api: Any) -> Any:
        return api.merge_environment_settings(
            "https://10.0.0.5:2376/version", {}, False, None, None
        )["verify"]

    stock = docker.APIClient(base_url="tcp://10.0.0.5:2376", version="1.41", tls=tls())
    assert verify_used(stock) == "/etc/ssl/certs/system.pem"  # the trap
    ours = _engine_client()(base_url="tcp://10.0.0.5:2376", version="1.41", tls=tls())
    assert verify_used(ours.api) == str(tmp_path / "ca.pem")
    plain = _engine_client()(base_url="tcp://10.0.0.5:2375", version="1.41")
    assert verify_used(plain.api) == "/etc/ssl/certs/system.pem"  # no TLS of its own: untouched
