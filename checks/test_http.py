"""Runbook Quick diagnosis 3: does the health endpoint answer 200 in time?"""

from stackcheck import Command, Fix, Layer, Safety, check, expect
from stackcheck.probes.facts import HttpFacts
from stackcheck.runbook import (
    ALL,
    DIAGNOSE_HEALTH,
    LOGS,
    REMOVE,
    RESOLVE_MANUAL_RESTART,
    UP,
)

HEALTHY_WORDS = {"ok", "healthy", "pass", "up", "green"}


@check(
    title="the health endpoint answers 200",
    layer=Layer.API,
    step=DIAGNOSE_HEALTH,
    fix=Fix(
        RESOLVE_MANUAL_RESTART,
        (
            Command("curl -v $health_url", Safety.READ_ONLY),
            LOGS,
            REMOVE,
            UP,
            Command("$compose logs -f --tail=50 $service", Safety.READ_ONLY),
        ),
    ),
    alerts=(*ALL, "health_check_failing", "high_error_rate"),
    applies=lambda service: bool(service.health_url),
)
def test_http_health(http: HttpFacts) -> None:
    took = f" after {http.elapsed_s:g} s" if http.elapsed_s is not None else ""
    expect(http.error is None, f"{http.error}{took}")
    excerpt = " ".join(http.body.split())[:200]
    expect(
        http.status == 200,
        f"GET {http.url} answered {http.status}{took}: {excerpt}".rstrip(": "),
    )
    # A 200 whose JSON says otherwise is a failing service that kept its status code.
    expect(
        http.json_status is None or str(http.json_status).lower() in HEALTHY_WORDS,
        f"GET {http.url} answered 200 but its body says status={http.json_status!r}: {excerpt}",
    )
