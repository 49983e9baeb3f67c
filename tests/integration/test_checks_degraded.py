"""Hostile conditions a check must report as a clear failure, never crash or hang on.

Real servers on loopback stand in for a misbehaving health endpoint; a Docker
address with nothing behind it, and a user without access to the socket, for
an engine the suite cannot use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stackcheck.probes.gather import PROBES_FOR_CHECK
from tests.checkrun import run_checks


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/text-ok":
            self._answer(200, b"OK", "text/plain")
        elif self.path == "/html-500":
            self._answer(500, b"<html><body>Internal Server Error</body></html>", "text/html")
        elif self.path == "/json-degraded":
            self._answer(200, b'{"status": "degraded"}', "application/json")
        elif self.path == "/not-json-200":
            self._answer(200, b"\xff\xfe{not json", "application/json")
        elif self.path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(30):
                self.wfile.write(b"X-Slow: 1\r\n")
                self.wfile.flush()
                time.sleep(1)
        elif self.path == "/trickle-body":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
        elif self.path == "/hang":
            time.sleep(30)
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(2**14):  # 1 GiB if anyone read it all
                    self.wfile.write(chunk)
            except OSError:
                pass

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def stack_file(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(
        f"""[stack]
name = "degraded"
compose_project = "stackcheck-no-such-project"
{extra}
[services.api]
health_url = "{url}"
"""
    )
    return path


CASES = {
    "text-ok": ("passed", "", "200 with a plain-text body is a healthy answer"),
    "html-500": ("failed", "answered 500", "the status and an excerpt of the body"),
    "json-degraded": ("failed", "status='degraded'", "a 200 whose JSON says otherwise"),
    "not-json-200": ("passed", "", "an undecodable body is not a crash"),
    "trickle-headers": ("failed", "deadline", "headers a byte a second"),
    "trickle-body": ("failed", "deadline", "a body a byte a second"),
    "hang": ("failed", "deadline", "no answer at all"),
    "huge": ("passed", "", "a 1 GiB body is read only up to the cap"),
}


@pytest.mark.parametrize("path", sorted(CASES))
def test_http_health_on_misbehaving_endpoint(server: str, path: str, tmp_path: Path) -> None:
    outcome, evidence, _why = CASES[path]
    stack = stack_file(tmp_path, f"http://{server}/{path}", "[timeouts]\nprobe_s = 3\n")
    run = run_checks("--stack", str(stack), "-k", "http_health", tmp_path=tmp_path)
    assert run.outcomes == {"test_http_health[api]": outcome}, run.stdout[-2000:]
    assert evidence in run.messages.get("test_http_health[api]", "")
    assert "Traceback" not in run.stdout + run.stderr
    assert run.wall_s < 3 + 5


def test_refused_and_tls_errors_are_named(server: str, tmp_path: Path) -> None:
    with_tls = stack_file(tmp_path, f"https://{server}/text-ok")
    run = run_checks("--stack", str(with_tls), "-k", "http_health", tmp_path=tmp_path)
    assert "TLS error" in run.messages["test_http_health[api]"]
    refused = stack_file(tmp_path, "http://127.0.0.1:1/health")
    run = run_checks("--stack", str(refused), "-k", "http_health", tmp_path=tmp_path)
    assert "connection refused" in run.messages["test_http_health[api]"]


def test_unresolvable_health_host(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761); the resolver may still ask upstream, so
    # this names the failure without relying on how long the answer takes.
    stack = stack_file(tmp_path, "http://stackcheck.invalid/health", "[timeouts]\nprobe_s = 3\n")
    run = run_checks("--stack", str(stack), "-k", "http_health", tmp_path=tmp_path)
    message = run.messages["test_http_health[api]"]
    assert "does not resolve" in message or "deadline" in message


def test_unreachable_engine_fails_docker_checks_and_runs_the_rest(
    server: str, tmp_path: Path
) -> None:
    socket = tmp_path / "no-engine.sock"
    stack = stack_file(tmp_path, f"http://{server}/text-ok", f'docker_host = "unix://{socket}"')
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1
    assert run.outcomes.pop("test_http_health[api]") == "passed"
    docker_checks = {
        f"test_{check}[api]"
        for check, probe in PROBES_FOR_CHECK.items()
        if probe in ("container", "logs", "stats")
    }
    assert run.failed() == docker_checks, run.outcomes
    for test_id in docker_checks:
        message = run.messages[test_id]
        assert f"Docker engine unreachable at unix://{socket}" in message, test_id
    assert "Traceback" not in run.stdout + run.stderr
    assert "INTERNALERROR" not in run.stdout + run.stderr
