"""What changed since the last healthy run, against the real testbed.

A healthy run saves the baseline; the testbed's changes then recreate the
backend with another image, another memory limit and another environment
value (the stack stays healthy), a fault breaks it, and the failing run must
name each change, with how long ago, before the root cause: in the terminal,
the summary JSON and the incident note. No value of the environment and no
password reaches any file. Reset undoes the changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from stackcheck.report.files import slug
from testbed import CANARY_PASSWORD, CHANGES
from testbed.stack import CHANGED_FLAVOR, FLAVOR, MEM_LIMIT
from tests.checkrun import ROOT, run_checks

SUMMARY_SCHEMA = json.loads((ROOT / "docs" / "summary.schema.json").read_text())


def _stack_file(testbed, tmp_path: Path) -> Path:
    """The testbed's stack file, with the password in the DSN: redaction is under test
    too. A long probe deadline: on a loaded machine `docker stats` can take longer than
    the default 5 s, and a blind run is not healthy (timings are bench/'s business)."""
    path = testbed.write_stack_file(tmp_path / "stack.toml")
    text = path.read_text().replace(
        "postgresql://scheduler@", f"postgresql://scheduler:{CANARY_PASSWORD}@"
    )
    path.write_text(text + "\n[timeouts]\nprobe_s = 30\n")
    return path


def _everything(run, reports: Path) -> str:
    texts = [run.stdout, run.stderr]
    texts += [p.read_text(errors="replace") for p in reports.rglob("*") if p.is_file()]
    return "\n".join(texts)


def test_image_limit_and_environment_changes_are_named_before_the_root_cause(
    testbed, fault, tmp_path: Path
) -> None:
    stack = _stack_file(testbed, tmp_path)
    reports = tmp_path / "reports"
    name = slug(testbed.project)
    image = testbed.container("backend").attrs["Config"]["Image"]

    healthy = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert healthy.returncode == 0, healthy.stdout[-3000:]
    saved = json.loads((reports / f"baseline-{name}.json").read_text())
    backend = saved["services"]["backend"]["container"]
    assert backend["image"] == image and backend["mem_limit"] == MEM_LIMIT
    assert "APP_FLAVOR" in backend["env"] and backend["env_key_id"]
    assert saved["services"]["db"]["pg"]["max_connections"] == 30
    assert saved["services"]["db"]["pg"]["server_version"].startswith("15.")
    assert saved["services"]["db"]["datafs"]["size_kb"] == 128 * 1024

    # All three in one recreation of the backend (each alone is a testbed fault
    # too); reset, which the fault fixture runs after the test, undoes them.
    try:
        testbed.change(*CHANGES)
    finally:
        fault("health-500")  # the changes alone leave the stack healthy
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]

    lines = run.remediation().splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("WHAT CHANGED"))
    assert "since the last healthy run (" in lines[heading]
    root = next(i for i, line in enumerate(lines) if line.startswith("ROOT CAUSE"))
    assert heading < root
    assert "backend:http_health" in lines[root]
    shown = [line.strip() for line in lines[heading + 1 : root] if line.strip()]
    variant = testbed.container("backend").attrs["Config"]["Image"]
    assert variant != image
    by_what = {line.split(" ago")[0].rsplit(" ", 2)[0]: line for line in shown}
    assert set(by_what) == {
        "backend image changed",
        "backend memory limit changed",
        "backend environment changed",
    }, shown
    assert by_what["backend image changed"].endswith(f" ago: {image} → {variant}")
    assert by_what["backend memory limit changed"].endswith(" ago: 256 MiB → 192 MiB")
    assert by_what["backend environment changed"].endswith(
        " ago: APP_FLAVOR changed (values not shown)"
    )

    summary = json.loads((reports / f"summary-{name}.json").read_text())
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    assert {c["what"] for c in summary["changes"]} == {
        "image changed",
        "memory limit changed",
        "environment changed",
    }
    assert all(c["at"] and c["ago_s"] is not None for c in summary["changes"])
    assert summary["stacks"][0]["baseline_at"] == saved["saved_at"]
    (note,) = reports.glob(f"incident-{name}-*.md")
    text = note.read_text()
    assert text.index("## What changed since the last healthy run") < text.index("## Root causes")
    assert f"{image} → {variant}" in text and "256 MiB → 192 MiB" in text

    everything = _everything(run, reports)
    assert CANARY_PASSWORD not in everything
    assert CHANGED_FLAVOR not in everything and f"APP_FLAVOR={FLAVOR}" not in everything
    # The failing run kept the healthy run's baseline.
    assert json.loads((reports / f"baseline-{name}.json").read_text()) == saved

    testbed.reset()
    assert testbed.dirt() == {"db": [], "backend": []}
    attrs = testbed.container("backend").attrs
    assert attrs["Config"]["Image"] == image and attrs["HostConfig"]["Memory"] == MEM_LIMIT
    assert f"APP_FLAVOR={FLAVOR}" in attrs["Config"]["Env"]
