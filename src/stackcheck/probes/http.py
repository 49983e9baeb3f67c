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
import time
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import requests
from requests.utils import requote_uri

from stackcheck.probes.deadline import Deadline
from stackcheck.probes.facts import HttpFacts

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
            said = (
                f"GET {url} answered {response.status_code}"
                if current == url
                else f"GET {url} was redirected to {_shown(current)}, which answered "
                f"{response.status_code}"
            )
            try:
                target = requote_uri(urljoin(current, location))
                other = elsewhere(url, target)
            except ValueError:  # "http://[::1", a port that is not a number
                facts.error = f"{said} redirecting to an invalid URL {_shown(location)!r}"
                return
            if other is not None:
                facts.error = (
                    f"{said} redirecting to {_shown(target)} (another {other}: not followed)"
                )
                return
            if target in visited:
                facts.error = (
                    f"{said} redirecting to {_shown(target)}: a redirect loop "
                    f"(that URL was already visited; not followed)"
                )
                return
            if hops == MAX_REDIRECTS:
                facts.error = (
                    f"{said} redirecting to {_shown(target)}: more than {MAX_REDIRECTS} "
                    "redirects (the limit; not followed)"
                )
                return
            if deadline.left(0) == 0:
                facts.error = (
                    f"{said} redirecting to {_shown(target)}: the probe deadline passed first"
                )
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
    if facts.body:
        try:
            parsed = json.loads(facts.body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            facts.json_status = parsed.get("status")
    return facts
