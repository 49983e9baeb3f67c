"""The HTTP probe against real servers on loopback, and the verdict http_health gives on it.

No Docker: two ``http.server`` servers on 127.0.0.1 (two ports, so two origins)
and raw-socket answers stand in for a health endpoint that redirects, loops,
floods headers, trickles, hangs or answers forever. Each test runs the probe
itself (``http_facts``, or ``gather``'s ``Batch`` for the deadline) and then the
real check on the facts it produced, so the evidence asserted is the evidence an
engineer reads.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from stackcheck.model import CheckFailed
from stackcheck.probes import http as probe
from stackcheck.probes.deadline import Batch, Deadline, TimedOut
from stackcheck.probes.facts import HttpFacts

CHECKS = Path(__file__).resolve().parents[2] / "checks"
# Generous: no test here waits for it except the hang and trickle ones, which use
# a short deadline of their own.
PROBE_S = 10.0


def _load_http_check() -> ModuleType:
    """``checks/test_http.py`` under a private name, never collected twice."""
    spec = importlib.util.spec_from_file_location(
        "_stackcheck_http_probe_checks", CHECKS / "test_http.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


http_check = _load_http_check()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    hits: Counter[str]
    other_port: int  # the port of the other origin, for /to-other
    release: threading.Event  # ends the hanging handlers at teardown


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        port = self.server.server_address[1]
        path = self.path
        if path == "/ok":
            self._answer(200, b'{"status": "ok"}')
        elif path == "/fail":
            self._answer(503, b'{"status": "down"}')
        elif path == "/to-ok":
            self._redirect(302, "/ok")
        elif path == "/to-ok-absolute":
            self._redirect(301, f"http://127.0.0.1:{port}/ok")
        elif path == "/to-fail":
            self._redirect(307, "/fail")
        elif path.startswith("/hops/"):  # /hops/N: N redirects, then 200
            left = int(path.rsplit("/", 1)[1])
            if left:
                self._redirect(302, f"/hops/{left - 1}")
            else:
                self._answer(200, b'{"status": "ok"}')
        elif path == "/loop":
            self._redirect(302, "/loop")
        elif path == "/ping":
            self._redirect(302, "/pong")
        elif path == "/pong":
            self._redirect(302, "/ping")
        elif path == "/to-other":
            self._redirect(302, f"http://127.0.0.1:{self.server.other_port}/ok")
        elif path == "/to-ok-then-other":
            self._redirect(302, "/to-other")
        elif path == "/to-localhost":
            self._redirect(302, f"http://localhost:{port}/ok")
        elif path == "/to-https":
            self._redirect(301, f"https://127.0.0.1:{port}/ok")
        elif path == "/to-other-endless-body":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.other_port}/ok")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while not self.server.release.is_set():  # a body that never ends
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        elif path == "/to-bad-url":
            self._redirect(302, "http://[::1/ok")
        elif path.startswith("/headers/"):  # /headers/N: N header lines in all
            total = int(path.rsplit("/", 1)[1])
            lines = [f"X-Filler-{i}: 1\r\n" for i in range(total - 1)]
            self._raw("HTTP/1.1 200 OK\r\n" + "".join(lines) + "Content-Length: 2\r\n\r\nOK")
        elif path == "/long-header":
            self._raw("HTTP/1.1 200 OK\r\nX-Long: " + "a" * 70_000 + "\r\n\r\n")
        elif path == "/close":
            self.close_connection = True  # no answer at all
        elif path == "/not-http":
            self._raw("hello there\r\n\r\n")
        elif path == "/hang":
            self.server.release.wait(60)
        elif path == "/trickle-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            while not self.server.release.wait(0.2):
                self.wfile.write(b"X-Slow: 1\r\n")
                self.wfile.flush()
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(2**14):  # 1 GiB if anyone read it all
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass
        else:
            self._answer(404, b"no such path")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _raw(self, text: str) -> None:
        self.close_connection = True
        self.wfile.write(text.encode())


def _serve() -> Server:
    server = Server(("127.0.0.1", 0), Handler)
    server.hits = Counter()
    server.release = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """The health endpoint's server and another origin (same address, another port)."""
    here, other = _serve(), _serve()
    here.other_port = other.server_address[1]
    other.other_port = here.server_address[1]
    yield here, other
    for server in (here, other):
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(servers: tuple[Server, Server]) -> Server:
    for each in servers:
        each.hits.clear()
    return servers[0]


def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def probe_get(url: str, seconds: float = PROBE_S) -> HttpFacts:
    return probe.http_facts("api", url, Deadline(seconds), connect_s=seconds)


def verdict(facts: HttpFacts) -> str | None:
    """None if http_health passes on these facts, else its evidence."""
    try:
        http_check.test_http_health(facts)
    except CheckFailed as exc:
        return str(exc)
    return None


# --- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "last"), [("/to-ok", "/ok"), ("/to-ok-absolute", "/ok"), ("/hops/5", "/hops/0")]
)
def test_same_origin_redirect_is_followed_and_its_200_passes(
    server: Server, path: str, last: str
) -> None:
    facts = probe_get(base(server) + path)
    assert (facts.error, facts.status, facts.json_status) == (None, 200, "ok")
    assert verdict(facts) is None
    assert server.hits[last] == 1


def test_same_origin_redirect_to_a_failing_page_fails_with_its_status(server: Server) -> None:
    facts = probe_get(base(server) + "/to-fail")
    evidence = verdict(facts)
    assert evidence is not None and "answered 503" in evidence


def test_redirect_to_another_port_is_not_followed(
    servers: tuple[Server, Server], server: Server
) -> None:
    other = servers[1]
    url = base(server) + "/to-other"
    facts = probe_get(url)
    target = f"{base(other)}/ok"
    evidence = verdict(facts)
    assert evidence is not None
    assert evidence.startswith(f"GET {url} answered 302 redirecting to {target} (another port: ")
    assert "not followed" in evidence
    # The other origin's 200 was never even asked for.
    assert other.hits["/ok"] == 0


def test_redirect_elsewhere_after_a_same_origin_hop_names_both(
    servers: tuple[Server, Server], server: Server
) -> None:
    url = base(server) + "/to-ok-then-other"
    evidence = verdict(probe_get(url))
    assert evidence is not None
    assert f"GET {url} was redirected to {base(server)}/to-other, which answered 302" in evidence
    assert f"redirecting to {base(servers[1])}/ok (another port: not followed)" in evidence
    assert servers[1].hits["/ok"] == 0


def test_a_redirect_body_is_not_read(servers: tuple[Server, Server], server: Server) -> None:
    # requests reads a redirect's whole body to prepare the next hop, even when it
    # does not follow: an endless one would hold the probe until the deadline.
    deadline = Deadline(PROBE_S)
    batch = Batch(deadline)
    url = base(server) + "/to-other-endless-body"
    batch.start("http:api", lambda: probe.http_facts("api", url, deadline, PROBE_S))
    facts = batch.collect()["http:api"]
    assert isinstance(facts, HttpFacts), facts
    evidence = verdict(facts)
    assert evidence is not None and "(another port: not followed)" in evidence


def test_redirect_to_another_host_name_is_not_followed(server: Server) -> None:
    url = base(server) + "/to-localhost"
    port = server.server_address[1]
    evidence = verdict(probe_get(url))
    assert evidence is not None
    expected = f"GET {url} answered 302 redirecting to http://localhost:{port}/ok"
    assert evidence.startswith(expected + " (another host: not followed)"), evidence
    assert server.hits["/ok"] == 0


def test_redirect_to_https_is_another_origin(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/to-https"))
    assert evidence is not None and "(another scheme: not followed)" in evidence


def test_redirect_to_an_invalid_url_is_named(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/to-bad-url"))
    assert evidence is not None and "redirecting to an invalid URL 'http://[::1/ok'" in evidence


@pytest.mark.parametrize("path", ["/loop", "/ping"])
def test_redirect_loop_is_named(server: Server, path: str) -> None:
    evidence = verdict(probe_get(base(server) + path))
    assert evidence is not None and "a redirect loop" in evidence
    assert sum(server.hits.values()) <= 2


def test_endless_redirects_stop_at_the_named_limit(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/hops/1000"))
    assert evidence is not None
    assert f"more than {probe.MAX_REDIRECTS} redirects (the limit" in evidence
    assert probe.MAX_REDIRECTS == 5
    # One first request, then exactly the hops the limit allows.
    assert sum(server.hits.values()) == probe.MAX_REDIRECTS + 1
    assert verdict(probe_get(base(server) + f"/hops/{probe.MAX_REDIRECTS + 1}")) is not None


def test_a_long_location_is_cut_in_the_evidence() -> None:
    shown = probe._shown("http://elsewhere/" + "a" * 10_000)
    assert len(shown) == probe.LOCATION_CAP + 1 and shown.endswith("…")


@pytest.mark.parametrize(
    ("url", "target", "what"),
    [
        ("http://h/health", "http://h:80/x", None),
        ("https://H:443/health", "https://h/x", None),
        ("http://h/health", "http://h.example/health", "host"),
        ("http://h/health", "https://h/health", "scheme"),
        ("http://h:8000/health", "http://h:8001/health", "port"),
    ],
)
def test_origin_comparison(url: str, target: str, what: str | None) -> None:
    assert probe.elsewhere(url, target) == what


# --- protocol limits and broken answers --------------------------------------------------


def test_more_than_100_headers_names_the_header_limit(server: Server) -> None:
    url = base(server) + "/headers/150"
    evidence = verdict(probe_get(url))
    assert evidence is not None
    assert evidence.startswith(f"GET {url}: the answer has more than 100 headers")
    assert "header limit" in evidence
    assert "closed the connection" not in evidence


def test_headers_under_the_limit_pass(server: Server) -> None:
    assert verdict(probe_get(base(server) + "/headers/90")) is None


def test_a_header_line_over_the_limit_is_named(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/long-header"))
    assert evidence is not None
    assert "got more than 65536 bytes when reading header line" in evidence
    assert "line limit" in evidence


def test_a_closed_connection_is_still_named_so(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/close"))
    assert evidence is not None
    assert "server closed the connection without answering" in evidence


def test_an_answer_that_is_not_http_is_named(server: Server) -> None:
    evidence = verdict(probe_get(base(server) + "/not-http"))
    assert evidence is not None and "the answer is not HTTP" in evidence


def test_tls_to_a_plain_http_server_is_a_tls_error(server: Server) -> None:
    port = server.server_address[1]
    evidence = verdict(probe_get(f"https://127.0.0.1:{port}/ok"))
    assert evidence is not None and "TLS error" in evidence


# --- the deadline and the body cap, as before --------------------------------------------


def test_a_huge_body_is_read_only_up_to_the_cap(server: Server) -> None:
    facts = probe_get(base(server) + "/huge")
    assert facts.status == 200
    assert len(facts.body) == probe.BODY_CAP
    assert verdict(facts) is None


@pytest.mark.parametrize("path", ["/hang", "/trickle-headers"])
def test_hang_and_trickle_end_at_the_deadline(server: Server, path: str) -> None:
    # As gather runs it: the batch stops waiting at the deadline, whatever the server does.
    deadline = Deadline(0.5)
    batch = Batch(deadline)
    batch.start("http:api", lambda: probe.http_facts("api", base(server) + path, deadline, 0.5))
    result = batch.collect()["http:api"]
    if isinstance(result, HttpFacts):  # a read timeout inside the deadline is fine too
        assert result.error is not None and "timed out" in result.error
    else:
        assert isinstance(result, TimedOut)
