"""Benchmark (issue #5): the suite against the runbook by hand, the floor, the worst case, scale.

    .venv/bin/python bench/run_bench.py [--repeat 5] [--out reports/bench.json] [--quick]

Brings up its own testbed projects (stackcheck-bench-0..5, loopback ports
18100+i / 15500+i), measures, prints a table, writes JSON, and removes every
project it started, also on Ctrl-C. Timings are reported, never asserted.
See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import HugeBody, Sample, run  # noqa: E402

from testbed import CANARY_PASSWORD, Testbed  # noqa: E402

PY = sys.executable
PROJECT_PREFIX = "stackcheck-bench-"
PROBE_S = 5.0  # [timeouts] probe_s default (src/stackcheck/config.py)
# Documented worst case (README.md, "Bound"): probe_s + 1 s, interpreter start-up included.
STARTUP_S = 1.0
BOUND_S = PROBE_S + STARTUP_S
HUGE_BYTES = 4 * 2**30
RUN_TIMEOUT_S = 120.0
TARGETS = {  # name -> limit; every ratio is "at most" (issue 11 for the first three)
    "suite serial (s)": 1.0,
    "suite / runbook": 0.2,
    "suite / floor": 1.2,
    "worst case - bound (s)": 1.0,
    "worst case -n 2 - bound (s)": 1.0,
    "6 stacks / 1 stack": 3.0,
    "peak RSS, serial (MB)": 150.0,
    "peak RSS, -n 2 (MB)": 150.0,
}


class Bench:
    def __init__(
        self, repeat: int, scale: tuple[int, ...], first: Testbed | None = None, keep: bool = False
    ) -> None:
        self.repeat = repeat
        self.scale = scale
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="stackcheck-bench-"))
        self.beds = [
            Testbed(project=f"{PROJECT_PREFIX}{i}", backend_port=18100 + i, db_port=15500 + i)
            for i in range(max(scale))
        ]
        if first is not None:
            self.beds[0] = first
        self.stacks = [
            bed.write_stack_file(self.tmp / f"stack-{i}.toml") for i, bed in enumerate(self.beds)
        ]
        self.env = {**os.environ, "PGPASSWORD": CANARY_PASSWORD}
        self.env.pop("PYTEST_ADDOPTS", None)
        # A user's interpreter keeps compiled bytecode; a sandbox that sets this
        # makes every run compile the suite (and pytest rewrite the checks) anew.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.rows: dict[str, list[Sample]] = {}
        self.notes: dict[str, Any] = {}
        self.runs = 0
        self.unexpected: list[str] = []  # runs whose exit code was not the expected one

    # ------------------------------------------------------------ plumbing

    def up(self) -> None:
        started = time.monotonic()
        self.beds[0].up()  # builds or reuses the images, once
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda bed: bed.up(), self.beds[1:]))
        self.notes["testbed_up_s"] = round(time.monotonic() - started, 1)

    def down(self) -> None:
        def down_one(bed: Testbed) -> None:
            try:
                bed.down()
            except Exception as exc:  # keep removing the others
                print(f"bench: down {bed.project}: {exc}", file=sys.stderr)

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(down_one, [] if self.keep else self.beds))
        if self.unexpected:
            print(f"bench: logs of unexpected exits kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def measure(self, key: str, cmd: list[str], expect_rc: int | None = 0) -> Sample:
        self.runs += 1
        log = self.tmp / f"{self.runs:04d}-{key.replace(' ', '_').replace('/', '')}.log"
        sample = run(cmd, cwd=ROOT, env=self.env, timeout=RUN_TIMEOUT_S, log=log)
        if expect_rc is not None and sample.returncode != expect_rc:
            self.unexpected.append(f"{key}: exit {sample.returncode} ({log})")
            tail = log.read_text(errors="replace")[-1500:]
            print(
                f"bench: {key}: exit {sample.returncode}, expected {expect_rc}\n{tail}",
                file=sys.stderr,
            )
        self.rows.setdefault(key, []).append(sample)
        return sample

    def suite(self, stacks: list[Path], *extra: str) -> list[str]:
        cmd = [PY, "-m", "pytest", "checks/", "-p", "no:cacheprovider"]
        cmd += [f"--reports-dir={self.tmp / 'reports'}", *extra]
        for stack in stacks:
            cmd += ["--stack", str(stack)]
        return cmd

    def median(self, key: str) -> float:
        return statistics.median(s.wall_s for s in self.rows[key])

    def median_or(self, key: str, default: float) -> float:
        return self.median(key) if key in self.rows else default

    def rounds(self, cases: dict[str, list[str]], expect_rc: int = 0, warmup: bool = False) -> None:
        """Each case once per round, interleaved, so drifting load hits all alike."""
        for key, cmd in cases.items() if warmup else ():
            self.measure(key, cmd, expect_rc)
            self.rows.pop(key)
        for _ in range(self.repeat):
            for key, cmd in cases.items():
                self.measure(key, cmd, expect_rc)

    # -------------------------------------------------------------- phases

    def healthy(self) -> None:
        bed, stack = self.beds[0], self.stacks[0]
        script = [str(ROOT / "bench" / "runbook_by_hand.sh"), bed.project, str(bed.backend_port)]
        self.env.update(  # docker-compose v1 needs the testbed's variables; harmless elsewhere
            {
                **bed.images(),
                "TESTBED_DB_PASSWORD": CANARY_PASSWORD,
                "TESTBED_DB_PORT": str(bed.db_port),
                "TESTBED_BACKEND_PORT": str(bed.backend_port),
            }
        )
        floor = [PY, str(ROOT / "bench" / "floor.py"), "--project", bed.project]
        floor += ["--health-url", bed.health_url, "--dsn", bed.dsn, "--edge", "backend:db:5432"]
        floor += ["--datafs", "db:/var/lib/postgresql/data"]
        cases = {
            "runbook, docker CLI": script,
            "runbook, docker-compose v1": [*script, "compose"],
            "suite serial": self.suite([stack]),
            "suite -n 2": self.suite([stack], "-n", "2"),
            "suite --collect-only": self.suite([stack], "--collect-only", "-q"),
            "floor": floor,
            "python -c pass": [PY, "-c", "pass"],
            "python -c 'import pytest'": [PY, "-c", "import pytest"],
        }
        if self.scale == (1,):  # --one-stack: issue 11's rows only
            for key in ("runbook, docker-compose v1", "suite -n 2"):
                cases.pop(key)
        self.rounds(cases, warmup=True)
        fastest = min(("suite serial", "suite -n 2"), key=lambda k: self.median_or(k, 1e9))
        self.notes["recommended"] = "serial" if fastest == "suite serial" else "-n 2"
        self.notes["floor_probes_s"] = [
            json.loads(Path(s.log).read_text().splitlines()[-1])["probes_s"]
            for s in self.rows["floor"]
        ]
        outcome = Path(self.rows["suite serial"][-1].log).read_text().strip().splitlines()[-1]
        self.notes["suite_outcome"] = outcome.strip("= ")

    def mode(self) -> list[str]:
        return [] if self.notes["recommended"] == "serial" else ["-n", "2"]

    def scaling(self) -> None:
        cases = {}
        for n in self.scale:
            cases[f"{n} stack(s), serial"] = self.suite(self.stacks[:n])
            cases[f"{n} stack(s), -n 2"] = self.suite(self.stacks[:n], "-n", "2")
        self.rounds(cases)

    def huge_body(self) -> None:
        text = self.stacks[0].read_text().replace(self.beds[0].health_url, "{url}")
        with HugeBody(HUGE_BYTES) as server:
            stack = self.tmp / "stack-huge.toml"
            stack.write_text(text.replace("{url}", server.url))
            key = f"4 GiB health body, {self.notes['recommended']}"
            self.rounds({key: self.suite([stack], *self.mode())})
            self.notes["huge_most_bytes_sent"] = server.most_sent

    def worst_case(self) -> None:
        bed, stack = self.beds[0], self.stacks[0]
        bed.inject("health-hang")
        bed.inject("db-hung")
        cases = {
            "worst case, serial": self.suite([stack]),
            "worst case, -n 2": self.suite([stack], "-n", "2"),
        }
        self.rounds(cases, expect_rc=1)

    # ------------------------------------------------------------- results

    def results(self) -> dict[str, Any]:
        rec = "suite serial" if self.notes["recommended"] == "serial" else "suite -n 2"
        rec_mode = self.notes["recommended"]
        suite_rows = [k for k in self.rows if not k.startswith(("runbook", "floor", "python"))]
        parallel = [k for k in suite_rows if "-n 2" in k]
        serial = [k for k in suite_rows if k not in parallel]
        m = self.median
        ratios = {
            "suite serial (s)": m("suite serial"),
            "suite / runbook": m(rec) / m("runbook, docker CLI"),
            "suite / floor": m(rec) / m("floor"),
            "suite - floor (s)": m(rec) - m("floor"),
            "peak RSS, serial (MB)": max(s.peak_mb for k in serial for s in self.rows[k]),
        }
        if "runbook, docker-compose v1" in self.rows:
            ratios["suite / runbook (compose v1)"] = m(rec) / m("runbook, docker-compose v1")
        if f"worst case, {rec_mode}" in self.rows:
            worst = m(f"worst case, {rec_mode}")
            ratios["worst case - bound (s)"] = worst - BOUND_S
            ratios["worst case - probe_s (s)"] = worst - PROBE_S
            ratios["worst case - (probe_s + start-up) (s)"] = (
                worst - PROBE_S - m("suite --collect-only")
            )
            ratios["worst case -n 2 - bound (s)"] = m("worst case, -n 2") - BOUND_S
        if parallel:
            ratios["peak RSS, -n 2 (MB)"] = max(s.peak_mb for k in parallel for s in self.rows[k])
        if 6 in self.scale:
            ratios["6 stacks / 1 stack"] = self.median(f"6 stack(s), {rec_mode}") / self.median(
                f"1 stack(s), {rec_mode}"
            )
        targets = {
            name: {"value": round(v, 3), "limit": TARGETS[name], "met": v <= TARGETS[name]}
            for name, v in ratios.items()
            if name in TARGETS
        }
        return {
            "machine": machine(),
            "repeat": self.repeat,
            "bound_s": BOUND_S,
            "notes": self.notes,
            "unexpected_exits": self.unexpected,
            "rows": {
                key: {
                    "median_s": round(self.median(key), 3),
                    "min_s": min(s.wall_s for s in samples),
                    "max_s": max(s.wall_s for s in samples),
                    "peak_mb": max(s.peak_mb for s in samples),
                    "samples": [s.to_json() for s in samples],
                }
                for key, samples in self.rows.items()
            },
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "targets": targets,
        }


def machine() -> dict[str, Any]:
    docker = subprocess.run(
        ["docker", "ps", "-q"], capture_output=True, text=True, timeout=30, check=False
    )
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "running_containers": len(docker.stdout.split()),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"{'row':40} {'median s':>9} {'min':>6} {'max':>6} {'peak MB':>8}"]
    for key, row in result["rows"].items():
        lines.append(
            f"{key:40} {row['median_s']:9.2f} {row['min_s']:6.2f} {row['max_s']:6.2f} {row['peak_mb']:8.1f}"
        )
    lines.append("")
    for name, value in result["ratios"].items():
        target = result["targets"].get(name)
        verdict = (
            f"<= {target['limit']:g}: {'met' if target['met'] else 'MISSED'}" if target else ""
        )
        lines.append(f"{name:40} {value:9.2f}   {verdict}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per row (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench.json")
    parser.add_argument("--quick", action="store_true", help="scale to 1 and 3 stacks only")
    parser.add_argument(
        "--one-stack",
        action="store_true",
        help="issue 11's rows only: one stack, serial suite, floor, runbook script (2 min)",
    )
    parser.add_argument("--project", help="the one stack's testbed project (default bench's own)")
    parser.add_argument("--backend-port", type=int, default=18100)
    parser.add_argument("--db-port", type=int, default=15500)
    parser.add_argument(
        "--keep", action="store_true", help="leave the testbed projects up at the end"
    )
    args = parser.parse_args()

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    scale = (1,) if args.one_stack else (1, 3) if args.quick else (1, 3, 6)
    first = (
        Testbed(project=args.project, backend_port=args.backend_port, db_port=args.db_port)
        if args.project
        else None
    )
    bench = Bench(max(1, args.repeat), scale, first, args.keep)
    phases = [bench.up, bench.healthy]
    if not args.one_stack:
        phases += [bench.scaling, bench.huge_body, bench.worst_case]
    before = machine()
    try:
        for phase in phases:
            started = time.monotonic()
            print(f"bench: {phase.__name__} ...", file=sys.stderr, flush=True)
            phase()
            print(
                f"bench: {phase.__name__} done in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
            )
        result = bench.results()
        result["machine_before"] = before
    except KeyboardInterrupt:
        print("bench: interrupted, removing the testbed projects", file=sys.stderr)
        return 130
    finally:
        bench.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
