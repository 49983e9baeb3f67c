"""The same healthy stack checked through the local engine and over SSH (issue 10).

    .venv/bin/python bench/ssh_engine.py --local LOCAL.toml --ssh SSH.toml [--repeat 7]

LOCAL.toml and SSH.toml must describe the same stack: SSH.toml with
``docker_host = "ssh://…"`` and its ``[ssh]`` table, e.g. an sshd in front of
this machine's engine (see tests/integration/test_ssh_engine.py for one), or
``python -m testbed remote up``'s stack file against a local copy of the same
testbed. Runs alternate (local, ssh, local, ...) so that load from other jobs
hits both alike; one unmeasured warm-up of each first. Prints each row's median
wall time of `python -m pytest checks/` and the ratio (target: SSH at most 2x
local), and the SSH connect time alone (login + the engine's version). Reports
figures; never fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONNECT = """
import sys, time
from pathlib import Path
from stackcheck.config import load_stack
from stackcheck.probes import docker_probe
from stackcheck.probes.deadline import Deadline
stack = load_stack(Path(sys.argv[1]))
started = time.monotonic()
docker_probe.connect(stack, Deadline(60))
print(time.monotonic() - started)
"""


def run(stack: Path, reports: Path) -> tuple[float, int]:
    command = [sys.executable, "-m", "pytest", "checks/", "-q", "-p", "no:cacheprovider"]
    command += ["--stack", str(stack), "--reports-dir", str(reports)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120, check=False)
    return time.monotonic() - started, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=Path, required=True)
    parser.add_argument("--ssh", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {"local": [], "ssh": []}
    codes: dict[str, set[int]] = {"local": set(), "ssh": set()}
    with tempfile.TemporaryDirectory(prefix="stackcheck-bench-ssh-") as scratch:
        reports = Path(scratch)
        for round_ in range(args.repeat + 1):
            for name, stack in (("local", args.local), ("ssh", args.ssh)):
                wall, code = run(stack, reports)
                codes[name].add(code)
                if round_:  # the first round warms caches
                    samples[name].append(wall)
        connects = []
        for _ in range(args.repeat):
            done = subprocess.run(
                [sys.executable, "-c", CONNECT, str(args.ssh)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode == 0:
                connects.append(float(done.stdout.strip()))
    local = statistics.median(samples["local"])
    ssh = statistics.median(samples["ssh"])
    print(f"load average: {before:.1f} before, {os.getloadavg()[0]:.1f} at the end (1 min)")
    for name, median in (("local", local), ("ssh", ssh)):
        walls = samples[name]
        print(
            f"{name + ':':6} median {median:.2f} s of {len(walls)} (min {min(walls):.2f}, "
            f"max {max(walls):.2f}), exit {sorted(codes[name])}"
        )
    print(f"ssh / local: {ssh / local:.2f} (target <= 2)")
    if connects:
        print(f"ssh connect + version alone: median {statistics.median(connects):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
