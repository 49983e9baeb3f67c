"""The health endpoint, as `curl -v` in the runbook sees it, but bounded.

requests' timeout is per socket read, so a server trickling a byte a second
would never trip it; the caller's deadline bounds the whole exchange, and the
body is read up to a small cap so a huge or endless body costs nothing.

Redirects are followed by hand, and only within the health URL's own origin
(same scheme, host and port). The check asks whether *this* service is healthy:
a redirect to another host (a login page, a CDN, a load balancer's error page,
a stale DNS name) answering 200 says nothing about it, so such a redirect fails
the check and names where it pointed, instead of passing on someone else's 200.
Same-origin redirects are followed because they are routine and harmless
(`/health` -> `/health/`, a versioned path), and refusing them would turn a
healthy service red. An http -> https upgrade is another origin too: the stack
file should name the URL the service actually answers on.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.models import REDIRECT_STATI
from requests.utils import requote_uri

from stackcheck.probes.deadline import Deadline
from stackcheck.probes.facts import HttpFacts
from stackcheck.redact import strip_controls

BODY_CAP = 4096
# Same-origin hops followed before giving up: a health URL needs one or two at
# most, and each hop costs a round trip out of the shared deadline.
MAX_REDIRECTS = 5
# A Location header is the server's text: shown in the evidence, but not all of it.
LOCATION_CAP = 200
# http.client refuses an answer with more header lines than this (its _MAXHEADERS).
HEADER_LIMIT: int = getattr(http.client, "_MAXHEADERS", 100)
DEFAULT_PORTS = {"http": 80, "https": 443}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: urllib3 and requests nest the real cause in args."""
    todo = [exc]
    seen: set[int] = set()
    while todo and len(seen) < 32:  # bounded: a cycle or a deep chain costs nothing
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _protocol_reason(exc: BaseException) -> str | None:
    """What http.client refused in the answer, if that is why the request failed."""
    for cause in _causes(exc):
        # Order matters: LineTooLong and RemoteDisconnected are HTTPExceptions too.
        if isinstance(cause, http.client.LineTooLong):
            return f"{cause} (the HTTP client's line limit): answer refused"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "server closed the connection without answering"
        if isinstance(cause, http.client.BadStatusLine):
            return "the answer is not HTTP (bad status line)"
        if isinstance(cause, http.client.HTTPException) and "headers" in str(cause):
            return (
                f"the answer has more than {HEADER_LIMIT} headers (the HTTP client's "
                "header limit): answer refused"
            )
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer (read timed out)"
    protocol = _protocol_reason(exc)
    if protocol is not None:
        return protocol
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolutionError" in text:
            return "host name does not resolve"
        if "Connection refused" in text:
            return "connection refused"
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return "server closed the connection without answering"
        return "connection failed"
    if not isinstance(exc, requests.RequestException):  # urllib's ValueError on a bad URL
        return f"invalid URL ({exc})"
    return type(exc).__name__


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; ValueError if malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or DEFAULT_PORTS.get(scheme)


def elsewhere(url: str, target: str) -> str | None:
    """What puts ``target`` outside ``url``'s origin ("host", "scheme", "port"), or None."""
    here, there = origin(url), origin(target)
    if here[1] != there[1]:
        return "host"
    if here[0] != there[0]:
        return "scheme"
    if here[2] != there[2]:
        return "port"
    return None


class _OneHop(requests.Session):
    """A session that never prepares a redirect's next hop.

    Even with ``allow_redirects=False``, requests prepares the next request for
    ``Response.next``: it reads the redirect's whole body (unbounded: an endless
    one holds the probe until the deadline) and parses the Location (a malformed
    one raises out of ``get``). The hops are ``_exchange``'s to decide.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def _location(response: requests.Response) -> str | None:
    """The Location of a redirect (None if the answer is not one), as requests reads it."""
    if not response.is_redirect:
        return None
    raw = response.headers["location"]
    # http.client decodes headers as latin-1; servers send UTF-8 far more often.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def _shown(location: str) -> str:
    return location if len(location) <= LOCATION_CAP else location[:LOCATION_CAP] + "…"


def next_hop(
    url: str,
    current: str,
    status: int,
    location: str,
    visited: set[str],
    hops: int,
    deadline: Deadline,
) -> tuple[str | None, str | None]:
    """Where a redirect from ``current`` leads, or why it is not followed: (target, error)."""
    said = (
        f"GET {url} answered {status}"
        if current == url
        else f"GET {url} was redirected to {_shown(current)}, which answered {status}"
    )
    try:
        target = requote_uri(urljoin(current, location))
        other = elsewhere(url, target)
    except ValueError:  # "http://[::1", a port that is not a number
        return None, f"{said} redirecting to an invalid URL {_shown(location)!r}"
    if other is not None:
        return None, f"{said} redirecting to {_shown(target)} (another {other}: not followed)"
    if target in visited:
        return None, (
            f"{said} redirecting to {_shown(target)}: a redirect loop "
            f"(that URL was already visited; not followed)"
        )
    if hops == MAX_REDIRECTS:
        return None, (
            f"{said} redirecting to {_shown(target)}: more than {MAX_REDIRECTS} "
            "redirects (the limit; not followed)"
        )
    if deadline.left(0) == 0:
        return None, f"{said} redirecting to {_shown(target)}: the probe deadline passed first"
    return target, None


def _exchange(
    session: _OneHop, url: str, deadline: Deadline, connect_s: float, facts: HttpFacts
) -> None:
    """GET ``url``, following same-origin redirects; fill ``facts``, or set its error."""
    current = url
    visited = {url}
    for hops in range(MAX_REDIRECTS + 1):
        try:
            response = session.get(
                current,
                timeout=(min(connect_s, deadline.left()), deadline.left()),
                stream=True,
                allow_redirects=False,
                headers={"User-Agent": "stackcheck"},
            )
        except (requests.RequestException, ValueError) as exc:
            where = "" if current == url else f" (redirected to {_shown(current)})"
            facts.error = f"GET {url}{where}: {_reason(exc)}"
            return
        with response:
            facts.status = response.status_code
            location = _location(response)
            if location is None:
                _read_body(response, deadline, facts)
                return
            target, facts.error = next_hop(
                url, current, response.status_code, location, visited, hops, deadline
            )
            if target is None:
                return
            visited.add(target)
            current = target


def _read_body(response: requests.Response, deadline: Deadline, facts: HttpFacts) -> None:
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_CAP or deadline.left(0) == 0:
            break
    facts.body = b"".join(chunks)[:BODY_CAP].decode("utf-8", errors="replace")


def http_facts(service: str, url: str, deadline: Deadline, connect_s: float) -> HttpFacts:
    facts = HttpFacts(service=service, url=url)
    started = time.monotonic()
    try:
        with _OneHop() as session:
            _exchange(session, url, deadline, connect_s, facts)
    except requests.RequestException as exc:  # while reading the body
        facts.error = f"GET {url}: {_reason(exc)}"
    facts.elapsed_s = round(time.monotonic() - started, 3)
    _json_status(facts)
    return facts


def _json_status(facts: HttpFacts) -> None:
    if facts.body:
        try:
            parsed = json.loads(facts.body)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            facts.json_status = parsed.get("status")


# ---------------------------------------------------------------- in-container
#
# health_via = "exec": the same GET, made by curl inside the service's
# container through the engine (the URL as the container reaches it, e.g.
# http://127.0.0.1:8000/health), so no port needs publishing. The same
# same-origin redirect rule applies (curl never follows; each hop is decided
# by next_hop, as above), the same body cap and deadline, the same evidence.
#
# $1 = URL, $2 = curl's whole time limit (s), $3 = its connect limit (s),
# $4 = body cap (bytes). The body goes to stdout through head (so the engine
# never carries more than the cap); curl's write-out and exit code to stderr.
# What an exec costs besides curl's own time: creating and starting it (a
# process spawned in the container), handing the answer back, asking its exit
# code. Measured over SSH to the remote test host (Docker-in-Docker) with the
# machine's load average at 6-9: 0.1-0.47 s, so a 0.5 s margin let 1 run in 8
# of health-trickle end past the deadline (could not check, not the stack's
# failure). Locally it is less; the margin only shortens curl's wait.
EXEC_MARGIN_S = 1.0
EXEC_SCRIPT = r"""
u="$1"; t="$2"; c="$3"; cap="$4"
for tool in curl head; do
  command -v "$tool" >/dev/null 2>&1 || { printf '@missing %s\n' "$tool" >&2; exit 0; }
done
{
  curl -q -sS --proto =http,https --max-time "$t" --connect-timeout "$c" -A stackcheck \
    -w '%{stderr}@curl %{http_code} %{time_total} %{time_connect} %{redirect_url}\n' \
    --url "$u"
  printf '@exit %s\n' "$?" >&2
} | head -c "$cap"
"""

# curl's exit codes, in the words the host path uses for the same failures.
CURL_REASONS = {
    3: "invalid URL (curl: malformed URL)",
    6: "host name does not resolve",
    8: "the answer is not HTTP (bad status line)",
    35: "TLS error",
    52: "server closed the connection without answering",
    60: "TLS error",
}
_WRITE_OUT = re.compile(r"@curl (\d{3}) (\d{1,6}(?:\.\d{1,9})?) (\d{1,6}(?:\.\d{1,9})?) ?(\S*)")


def _curl_reason(code: int, connected: bool, said: str) -> str:
    if code in CURL_REASONS:
        return CURL_REASONS[code]
    if code == 28:
        return "no answer (read timed out)" if connected else "connect timed out"
    if code == 7:
        return "connection refused" if "refused" in said.lower() else "connection failed"
    if code == 56:
        return "server closed the connection without answering"
    return f"curl failed (exit {code}): {said}" if said else f"curl failed (exit {code})"


@dataclass
class CurlAnswer:
    """One hop as curl saw it: parsed from EXEC_SCRIPT's output."""

    blind: str | None = None
    exit_code: int | None = None
    status: int | None = None
    elapsed_s: float | None = None
    connected: bool = False
    location: str = ""
    said: str = ""  # curl's own error message, control-stripped, capped
    body: str = ""


def parse_curl(stdout: bytes, stderr: bytes, container: str) -> CurlAnswer:
    """What EXEC_SCRIPT printed, parsed strictly (hostile input)."""
    answer = CurlAnswer()
    err = stderr.decode("utf-8", errors="replace")
    lines = err.splitlines()
    missing = [line[len("@missing ") :] for line in lines if line.startswith("@missing ")]
    if missing:
        tool = strip_controls(missing[0])[:40]
        answer.blind = (
            f"{tool} is not in {container}'s image: install it there, or fetch the health "
            "URL from the checker (health_via = 'host')"
        )
        return answer
    exits = [line[len("@exit ") :].strip() for line in lines if line.startswith("@exit ")]
    if not exits or not exits[-1].isdigit() or len(exits[-1]) > 3:
        shown = " ".join(strip_controls(err).split())[:200]
        answer.blind = f"curl in {container} gave no answer: {shown}"
        return answer
    answer.exit_code = int(exits[-1])
    found = None
    for line in lines:
        if line.startswith("@curl "):
            found = _WRITE_OUT.fullmatch(line.strip())
    if found is None:  # curl older than 7.63 has no %{stderr}
        answer.blind = f"curl in {container} did not report the answer (curl 7.63 or newer needed)"
        return answer
    code, total, connect, location = found.groups()
    answer.status = int(code) or None  # curl's 000: no answer
    answer.elapsed_s = round(float(total), 3)
    answer.connected = float(connect) > 0
    answer.location = location
    others = [line for line in lines if not line.startswith("@")]
    answer.said = " ".join(strip_controls(" ".join(others)).split())[:200]
    answer.body = stdout[:BODY_CAP].decode("utf-8", errors="replace")
    return answer


def exec_facts(
    container: Any, service: str, url: str, deadline: Deadline, connect_s: float
) -> HttpFacts:
    """GET ``url`` with curl inside ``container``, one exec per hop, under ``deadline``."""
    import docker.errors  # only runs with a reachable engine

    from stackcheck.probes import inside, network

    facts = HttpFacts(service=service, url=url)
    current = url
    visited = {url}
    elapsed = 0.0
    for hops in range(MAX_REDIRECTS + 1):
        # curl's own limit leaves the exec its start and end within the deadline.
        budget = deadline.left(0) - EXEC_MARGIN_S
        if budget < 0.5:
            facts.error = f"GET {url}: the probe deadline passed first"
            break
        argv = [
            "sh",
            "-c",
            EXEC_SCRIPT,
            "stackcheck",
            current,
            f"{budget:.1f}",
            f"{max(0.5, min(connect_s, budget)):.1f}",
            str(BODY_CAP),
        ]
        try:
            ran = inside.run(container, argv)
        except docker.errors.APIError as exc:
            network.file_refusal(facts, exc, f"curl in {container.name}")
            if facts.error:
                facts.error = f"GET {url}: {facts.error}"
            return facts
        answer = parse_curl(ran.stdout, ran.stderr, container.name)
        if answer.blind:
            facts.blind = f"GET {url}: {answer.blind}"
            return facts
        elapsed += answer.elapsed_s or 0.0
        facts.elapsed_s = round(elapsed, 3)
        # 23: head closed the pipe at the body cap, after the answer arrived.
        if answer.exit_code not in (0, 23) or answer.status is None:
            where = "" if current == url else f" (redirected to {_shown(current)})"
            reason = _curl_reason(answer.exit_code or 0, answer.connected, answer.said)
            facts.error = f"GET {url}{where}: {reason}"
            return facts
        facts.status = answer.status
        if answer.status not in REDIRECT_STATI or not answer.location:
            facts.body = answer.body
            _json_status(facts)
            return facts
        target, facts.error = next_hop(
            url, current, answer.status, answer.location, visited, hops, deadline
        )
        if target is None:
            return facts
        visited.add(target)
        current = target
    return facts
