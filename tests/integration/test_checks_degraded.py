"""Hostile conditions a check must report clearly, never crash or hang on.

Real servers on loopback stand in for a misbehaving health endpoint (a failed
check: the stack is wrong). A Docker address with nothing behind it stands in
for an engine the suite cannot use: every check that looks through the engine
"could not check" (a pytest ERROR, a blind spot), blames no service, and the
run's status is unknown (exit 6), while the checks that need no engine still
give their verdicts.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.checkrun import CheckRun, check_ids, run_checks
from tests.junit_schema import validate_junit

# Exit status of a run that found nothing wrong but could not see everything.
EXIT_UNKNOWN = 6
# The fixed address the issue names; nothing may listen there.
NO_ENGINE_SOCKET = Path("/tmp/stackcheck-no-engine.sock")
# On the testbed, the checks that reach PostgreSQL and the health URL directly.
NEED_NO_ENGINE = {"test_pg_ready[db]", "test_pg_connections[db]", "test_http_health[backend]"}
# The host checks read this machine through testinfra, not the engine; they apply
# to a local (unix://) engine, not to a tcp:// one.
HOST_CHECKS = {
    "test_host_engine_running[@host]",
    "test_host_disk[@host]",
    "test_host_memory[@host]",
}


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


def _assert_blind_not_blamed(run: CheckRun, stack: Path, address: str, name: str) -> None:
    """Every engine-based check could not check; nothing is blamed; status unknown."""
    engine_checks = check_ids(stack, engine_only=True)
    others = check_ids(stack) - engine_checks
    where = run.stdout[-4000:] + run.stderr[-2000:]
    assert engine_checks and others, (engine_checks, others)
    assert run.returncode == EXIT_UNKNOWN, where
    assert run.errors() == engine_checks, run.outcomes
    assert run.passed() == others, run.outcomes
    assert run.failed() == set(), run.outcomes
    for test_id in engine_checks:
        assert f"Docker engine unreachable at {address}" in run.messages[test_id], test_id

    summary = run.summary(name)
    assert summary["status"] == "unknown"
    assert summary["root_causes"] == []
    keys = {c["key"] for c in summary["checks"] if c["outcome"] == "error"}
    assert len(keys) == len(engine_checks)
    assert set(summary["blind_spots"]) == keys
    for check in summary["checks"]:
        assert check["caused_by"] is None, check
        if check["key"] in keys:
            assert check["role"] == "blind_spot", check
        else:
            assert (check["outcome"], check["role"]) == ("passed", None), check
    # A blind run opens no incident: nothing was found wrong with the stack.
    assert not list(run.reports.glob("incident-*.md"))

    # The terminal: no service is blamed, and the blind spot leads the Remediation.
    report = run.remediation()
    assert "ROOT CAUSE" not in run.stdout
    assert "UNKNOWN" in report.splitlines()[0], report
    first_block = next(line for line in report.splitlines()[1:] if line.strip())
    assert first_block.startswith("BLIND SPOT"), report
    assert f"Docker engine unreachable at {address}" in report

    # JUnit: an <error> per engine-based check, valid, the status a property.
    validate_junit(run.junit)
    root = ET.parse(run.junit).getroot()
    assert sum(1 for _ in root.iter("error")) == len(engine_checks)
    assert not list(root.iter("failure"))
    props = {(p.get("name"), p.get("value")) for p in root.iter("property")}
    assert ("stackcheck.status", "unknown") in props
    assert not any(name == "stackcheck.root_cause" for name, _ in props)

    assert "Traceback" not in run.stdout + run.stderr
    assert "INTERNALERROR" not in run.stdout + run.stderr


def test_unreachable_engine_blinds_docker_checks_and_runs_the_rest(
    server: str, tmp_path: Path
) -> None:
    socket = tmp_path / "no-engine.sock"
    stack = stack_file(tmp_path, f"http://{server}/text-ok", f'docker_host = "unix://{socket}"')
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.outcomes["test_http_health[api]"] == "passed"
    _assert_blind_not_blamed(run, stack, f"unix://{socket}", "degraded")


def _with_docker_host(testbed, tmp_path: Path, address: str) -> Path:
    path = testbed.write_stack_file(tmp_path / "stack.toml")
    text = path.read_text()
    line = f'compose_project = "{testbed.project}"\n'
    assert line in text
    path.write_text(text.replace(line, line + f'docker_host = "{address}"\n', 1))
    return path


def test_no_engine_at_docker_host_real_testbed(testbed, tmp_path: Path) -> None:
    """DOCKER_HOST names a socket nobody listens on: the engine checks are blind spots.

    The database and the health endpoint do not go through the engine, so against
    the (healthy) testbed they still pass.
    """
    assert not NO_ENGINE_SOCKET.exists(), f"{NO_ENGINE_SOCKET} must not exist for this test"
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    address = f"unix://{NO_ENGINE_SOCKET}"
    run = run_checks("--stack", str(stack), tmp_path=tmp_path, env={"DOCKER_HOST": address})
    assert run.passed() == NEED_NO_ENGINE | HOST_CHECKS
    _assert_blind_not_blamed(run, stack, address, testbed.project)


@pytest.mark.parametrize("kind", ["regular-file-socket", "tcp-port-1"])
def test_no_engine_at_stack_files_docker_host(testbed, tmp_path: Path, kind: str) -> None:
    """The stack file's docker_host points at no engine; the engine that answers here is not used.

    A regular file where the socket should be, or loopback port 1 (nothing
    listens there; loopback only, so nothing outside this machine is contacted).
    """
    if kind == "regular-file-socket":
        fake = tmp_path / "docker.sock"
        fake.write_text("not a socket\n")
        address = f"unix://{fake}"
    else:
        address = "tcp://127.0.0.1:1"
    stack = _with_docker_host(testbed, tmp_path, address)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    local = address.startswith("unix://")
    assert run.passed() == NEED_NO_ENGINE | (HOST_CHECKS if local else set())
    _assert_blind_not_blamed(run, stack, address, testbed.project)
