"""The Prometheus alerting rules, run by promtool over the metrics a real run writes.

The input series are the samples of the textfile the reporter wrote for a
fabricated outage (names and labels as they are), with values laid out over
time; promtool's clock starts at 0, so the incident opens at 0.

promtool comes with Debian's `prometheus` package (./run.sh test installs it).
Where it is absent these tests cannot run, and they skip saying so, unless
STACKCHECK_REQUIRE_PROMTOOL=1 (set by ./run.sh test): then its absence fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from reportbench import DB_STOPPED, CheckRun
from test_report_outputs import ENGINE_BLIND

from stackcheck import alert_rules
from stackcheck.cli import main
from stackcheck.runbook import ESCALATE_AFTER_MIN

pytest_plugins = ("pytester",)

RUNBOOK = "https://git.example.org/ops/stackcheck/-/blob/main/docs/runbook.md"
HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent.parent / "docs" / "prometheus" / "stackcheck-rules.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("STACKCHECK_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is required (STACKCHECK_REQUIRE_PROMTOOL=1) but not installed")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def series(prom: Path, values: dict[str, str]) -> list[dict[str, str]]:
    """Every sample of ``prom`` as a promtool input series; values by metric name."""
    found = []
    for family in text_string_to_metric_families(prom.read_text()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            default = "1x40" if sample.value == 1 else "0x40"
            found.append(
                {
                    "series": f"{sample.name}{{{labels}}}",
                    "values": values.get(sample.name, default),
                }
            )
    return found


def annotations(alert: str) -> dict[str, str]:
    rule = next(r for r in alert_rules.rules(RUNBOOK)["groups"][0]["rules"] if r["alert"] == alert)
    return {k: v.replace("{{ $labels.stack }}", "testbed") for k, v in rule["annotations"].items()}


def firing(alert: str, severity: str) -> list[dict[str, Any]]:
    return [
        {
            "exp_labels": {"severity": severity, "stack": "testbed"},
            "exp_annotations": annotations(alert),
        }
    ]


def run_promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    tool = promtool()
    assert main(["rules", "--runbook-url", RUNBOOK, "-o", str(tmp_path / "rules.yml")]) == 0
    spec = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run(
        [tool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_outage_alerts_after_two_minutes_and_pages_at_fifteen(
    checkrun: CheckRun, tmp_path: Path
) -> None:
    checkrun.scenario(DB_STOPPED)
    checkrun.run()
    prom = checkrun.reports / "stackcheck-testbed.prom"
    # The job keeps running every minute; the incident opened at promtool's 0.
    inputs = series(
        prom,
        {
            "stackcheck_incident_opened_timestamp_seconds": "0x40",
            "stackcheck_last_run_timestamp_seconds": "0+60x40",
        },
    )
    escalate = int(ESCALATE_AFTER_MIN)
    tests = [
        {
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "StackcheckStackUnhealthy", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "StackcheckStackUnhealthy",
                    "exp_alerts": firing("StackcheckStackUnhealthy", "critical"),
                },
                {
                    "eval_time": f"{escalate - 1}m",
                    "alertname": "StackcheckIncidentNotResolved",
                    "exp_alerts": [],
                },
                {
                    "eval_time": f"{escalate + 1}m",
                    "alertname": "StackcheckIncidentNotResolved",
                    "exp_alerts": firing("StackcheckIncidentNotResolved", "page"),
                },
                # The job runs: never stale; the stack is not blind.
                {"eval_time": "30m", "alertname": "StackcheckNotReporting", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "StackcheckBlind", "exp_alerts": []},
            ],
        }
    ]
    run_promtool(tmp_path, tests)


def test_a_blind_checker_and_a_stopped_job_alert(checkrun: CheckRun, tmp_path: Path) -> None:
    checkrun.scenario(ENGINE_BLIND)
    checkrun.run()
    prom = checkrun.reports / "stackcheck-testbed.prom"
    # The last run was at 0 and none since: stale after three 5-minute intervals.
    inputs = series(prom, {"stackcheck_last_run_timestamp_seconds": "0x40"})
    tests = [
        {
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "StackcheckBlind", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "StackcheckBlind",
                    "exp_alerts": firing("StackcheckBlind", "warning"),
                },
                # Blindness is no outage and opens no incident.
                {"eval_time": "20m", "alertname": "StackcheckStackUnhealthy", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "StackcheckIncidentNotResolved",
                    "exp_alerts": [],
                },
                {"eval_time": "14m", "alertname": "StackcheckNotReporting", "exp_alerts": []},
                {
                    "eval_time": "16m",
                    "alertname": "StackcheckNotReporting",
                    "exp_alerts": firing("StackcheckNotReporting", "warning"),
                },
            ],
        }
    ]
    run_promtool(tmp_path, tests)


def test_every_alert_links_to_a_runbook_step_that_exists() -> None:
    doc = (HERE.parent.parent / "docs" / "runbook.md").read_text()
    for rule in alert_rules.rules(RUNBOOK)["groups"][0]["rules"]:
        url = rule["annotations"]["runbook_url"]
        base, anchor = url.split("#")
        assert base == RUNBOOK
        assert f'<a id="{anchor}"></a>' in doc, (rule["alert"], anchor)


def test_the_shipped_rules_are_the_generated_ones_and_promtool_accepts_them(
    tmp_path: Path,
) -> None:
    text = SHIPPED.read_text()
    assert text == alert_rules.render(alert_rules.EXAMPLE_RUNBOOK_URL)
    done = subprocess.run(
        [promtool(), "check", "rules", str(SHIPPED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--runbook-url", "docs/runbook.md"], "must be an http(s) URL"),
        (["--runbook-url", "https://x.example/a b"], "must be an http(s) URL"),
        (["--runbook-url", RUNBOOK, "--escalate-after-min", "0"], "--escalate-after-min"),
    ],
)
def test_bad_rules_options_are_one_line(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", *args]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1
