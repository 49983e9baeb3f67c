"""The health endpoint, as `curl -v` in the runbook sees it, but bounded.

requests' timeout is per socket read, so a server trickling a byte a second
would never trip it; the caller's deadline bounds the whole exchange, and the
body is read up to a small cap so a huge or endless body costs nothing.
"""

from __future__ import annotations

import json
import time

import requests

from stackcheck.probes.deadline import Deadline
from stackcheck.probes.facts import HttpFacts

BODY_CAP = 4096


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer (read timed out)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolutionError" in text:
            return "host name does not resolve"
        if "Connection refused" in text:
            return "connection refused"
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return "server closed the connection without answering"
        return "connection failed"
    return type(exc).__name__


def http_facts(service: str, url: str, deadline: Deadline, connect_s: float) -> HttpFacts:
    facts = HttpFacts(service=service, url=url)
    started = time.monotonic()
    try:
        with requests.get(
            url,
            timeout=(min(connect_s, deadline.left()), deadline.left()),
            stream=True,
            headers={"User-Agent": "stackcheck"},
        ) as response:
            facts.status = response.status_code
            chunks = []
            size = 0
            for chunk in response.iter_content(chunk_size=1024):
                chunks.append(chunk)
                size += len(chunk)
                if size >= BODY_CAP or deadline.left(0) == 0:
                    break
            facts.body = b"".join(chunks)[:BODY_CAP].decode("utf-8", errors="replace")
    except requests.RequestException as exc:
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
