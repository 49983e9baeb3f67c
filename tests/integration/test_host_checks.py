"""The host checks on this machine, through testinfra's local backend, against the testbed.

They pass on the healthy testbed; with thresholds set below what the machine
really uses, the real df and /proc/meminfo readings fail them, as the root
cause beneath the stack, with the engine's real data root in the evidence.
(Filling this machine's disk or memory for real is not something a test may do.)
"""

from __future__ import annotations

from pathlib import Path

from testbed import Testbed
from tests.checkrun import run_checks

HOST = ("test_host_engine_running[@host]", "test_host_disk[@host]", "test_host_memory[@host]")


def test_host_checks_pass_on_this_machine(testbed: Testbed, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    run = run_checks("--stack", str(stack), "-k", "host_", tmp_path=tmp_path)
    assert {run.outcomes[name] for name in HOST} == {"passed"}, run.stdout[-3000:]


def test_real_readings_fail_a_threshold_below_them(testbed: Testbed, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    text = stack.read_text()
    stack.write_text(
        text + "\n[thresholds]\nhost_disk_percent = 0.01\nhost_memory_percent = 0.01\n"
    )
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.outcomes["test_host_disk[@host]"] == "failed", run.stdout[-3000:]
    assert run.outcomes["test_host_memory[@host]"] == "failed"
    assert run.outcomes["test_host_engine_running[@host]"] == "passed"
    assert "the filesystem of /var/lib/docker" in run.messages["test_host_disk[@host]"]
    assert "on this machine is" in run.messages["test_host_disk[@host]"]
    roots = run.summary(testbed.project)["root_causes"]
    assert roots == ["@host:host_disk", "@host:host_memory"]
    # Nothing else failed: the stack itself is healthy.
    assert {k for k, v in run.outcomes.items() if v == "failed"} == {HOST[1], HOST[2]}
