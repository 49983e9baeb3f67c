"""Runbook Quick diagnosis 3: does the health endpoint answer 200 in time?"""

from stackcheck import expect
from stackcheck.probes.facts import HttpFacts

HEALTHY_WORDS = {"ok", "healthy", "pass", "up", "green"}


def test_http_health(http: HttpFacts) -> None:
    expect(http.error is None, f"{http.error} after {http.elapsed_s} s")
    excerpt = " ".join(http.body.split())[:200]
    expect(
        http.status == 200,
        f"GET {http.url} answered {http.status} in {http.elapsed_s} s: {excerpt}",
    )
    # A 200 whose JSON says otherwise is a failing service that kept its status code.
    expect(
        http.json_status is None or str(http.json_status).lower() in HEALTHY_WORDS,
        f"GET {http.url} answered 200 but its body says status={http.json_status!r}: {excerpt}",
    )
