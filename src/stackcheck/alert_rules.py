"""Prometheus alerting rules over the suite's textfile metrics: ``stackcheck rules``.

The rules read what ``report/metrics.py`` writes (node_exporter's textfile
collector serves it) and link each alert to the runbook step an on-call engineer
starts from; the anchors come from ``stackcheck.runbook``, so a renamed step
cannot leave a dead link behind. The runbook's address differs per deployment
(a wiki, a Git host), so it is a parameter.
"""

from __future__ import annotations

from typing import Any

from stackcheck.runbook import DIAGNOSE_CONTAINER, ESCALATE_AFTER_MIN

GROUP = "stackcheck"
# What docs/prometheus/stackcheck-rules.yml is written with: replace it with yours.
EXAMPLE_RUNBOOK_URL = "https://git.example.org/ops/stackcheck/-/blob/main/docs/runbook.md"
UNHEALTHY_FOR = "2m"
BLIND_FOR = "5m"
# A scheduled job that stopped reporting: this many missed runs.
STALE_RUNS = 3


def rules(
    runbook_url: str, escalate_after_min: float = ESCALATE_AFTER_MIN, run_every_s: float = 300
) -> dict[str, Any]:
    """The rule group, as the structure Prometheus reads."""
    base = runbook_url.split("#", 1)[0]
    stale_s = int(run_every_s * STALE_RUNS)
    return {
        "groups": [
            {
                "name": GROUP,
                "rules": [
                    {
                        "alert": "StackcheckStackUnhealthy",
                        "expr": 'max by (stack) (stackcheck_stack_status{status="unhealthy"}) == 1',
                        "for": UNHEALTHY_FOR,
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.stack }}: a health check failed (stackcheck)",
                            "description": (
                                "stackcheck found {{ $labels.stack }} unhealthy for "
                                f"{UNHEALTHY_FOR}. Run `pytest checks/` for the root cause "
                                "and its fix."
                            ),
                            "runbook_url": f"{base}#{DIAGNOSE_CONTAINER.anchor}",
                        },
                    },
                    {
                        "alert": "StackcheckIncidentNotResolved",
                        "expr": (
                            "time() - max by (stack) "
                            "(stackcheck_incident_opened_timestamp_seconds) "
                            f"> {int(escalate_after_min * 60)}"
                        ),
                        "labels": {"severity": "page"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.stack }}: incident open past "
                                f"{escalate_after_min:g} minutes: page the team lead"
                            ),
                            "description": (
                                "The runbook: not resolved within "
                                f"{escalate_after_min:g} minutes, page the team lead and tell "
                                "#incidents."
                            ),
                            "runbook_url": f"{base}#escalation",
                        },
                    },
                    {
                        "alert": "StackcheckBlind",
                        "expr": 'max by (stack) (stackcheck_stack_status{status="unknown"}) == 1',
                        "for": BLIND_FOR,
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.stack }}: stackcheck could not check "
                                "(its own access failed): the status is unknown"
                            ),
                            "description": (
                                "Some checks of {{ $labels.stack }} could not run: the engine, "
                                "a tool or the network of the checker. Its Remediation report "
                                "lists each blind spot first, with how to restore sight."
                            ),
                            "runbook_url": f"{base}#{DIAGNOSE_CONTAINER.anchor}",
                        },
                    },
                    {
                        "alert": "StackcheckNotReporting",
                        "expr": (
                            "time() - max by (stack) (stackcheck_last_run_timestamp_seconds) "
                            f"> {stale_s}"
                        ),
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": (
                                "{{ $labels.stack }}: no stackcheck run for "
                                f"{STALE_RUNS} intervals"
                            ),
                            "description": (
                                "The scheduled stackcheck job stopped writing its metrics: "
                                "its verdicts are stale."
                            ),
                            "runbook_url": f"{base}#{DIAGNOSE_CONTAINER.anchor}",
                        },
                    },
                ],
            }
        ]
    }


def render(
    runbook_url: str, escalate_after_min: float = ESCALATE_AFTER_MIN, run_every_s: float = 300
) -> str:
    import yaml  # only `stackcheck rules` writes YAML

    head = (
        "# Prometheus alerting rules for stackcheck's textfile metrics.\n"
        "# Written by `stackcheck rules --runbook-url URL`, URL being where your copy of\n"
        "# docs/runbook.md is served; regenerate rather than edit.\n"
    )
    body: str = yaml.safe_dump(
        rules(runbook_url, escalate_after_min, run_every_s), sort_keys=False, width=100
    )
    return head + body
