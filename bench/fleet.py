"""Benchmark (issue 11, part 5): a fleet of testbed stacks, serial and `-n auto`.

    .venv/bin/python bench/fleet.py [--repeat 5] [--sizes 1,8,32] [--out reports/bench-fleet.json]

Brings up N testbed copies (`python -m testbed fleet`: projects sc-fleet-01..,
backend on 19000+i, PostgreSQL on 19500+i; --prefix/--backend-base/--db-base),
runs `python -m pytest checks/ --stack DIR` over the first 1, 8, 32 of them,
serially and with `-n auto`, round-robin, and measures wall time (interpreter
start-up included) and the peak memory of the whole process tree (controller
and workers; bench/measure.py). Then the same with one stack's health endpoint
streaming a 4 GiB body, and with every stack hung at once (testbed faults
health-hang + db-hung on each). Removes every copy at the end, also on Ctrl-C.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
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
from testbed import fleet as testbed_fleet  # noqa: E402

PY = sys.executable
PROBE_S = 5.0
HUGE_BYTES = 4 * 2**30
RUN_TIMEOUT_S = 180.0


class FleetBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.repeat = args.repeat
        self.sizes: list[int] = args.sizes
        self.beds = testbed_fleet.beds(
            max(self.sizes), args.prefix, args.backend_base, args.db_base
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="stackcheck-fleet-bench-"))
        self.env = {**os.environ, "PGPASSWORD": CANARY_PASSWORD}
        for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_AUTO_NUM_WORKERS"):
            self.env.pop(name, None)
        self.rows: dict[str, list[Sample]] = {}
        self.notes: dict[str, Any] = {}
        self.unexpected: list[str] = []
        self.runs = 0
        self.keep = args.keep

    def dirs(self, n: int, variant: str = "") -> Path:
        """A directory holding the stack files of the first n copies."""
        directory = self.tmp / f"stacks-{n}{variant}"
        if not directory.exists():
            directory.mkdir()
            for bed in self.beds[:n]:
                bed.write_stack_file(directory / f"{bed.project}.toml")
        return directory

    def up(self) -> None:
        started = time.monotonic()
        testbed_fleet.up(self.beds)
        self.notes["fleet_up_s"] = round(time.monotonic() - started, 1)

    def down(self) -> None:
        if self.keep:
            return
        try:
            testbed_fleet.down(self.beds)
        except Exception as exc:  # report, keep going
            print(f"bench: down: {exc}", file=sys.stderr)
        if not self.unexpected:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def suite(self, stacks: Path, *extra: str) -> list[str]:
        cmd = [PY, "-m", "pytest", "checks/", "-p", "no:cacheprovider", "-q", "--tb=no"]
        return [*cmd, f"--reports-dir={self.tmp / 'reports'}", "--stack", str(stacks), *extra]

    def measure(self, key: str, cmd: list[str], expect_rc: int) -> None:
        self.runs += 1
        log = self.tmp / f"{self.runs:04d}.log"
        sample = run(cmd, cwd=ROOT, env=self.env, timeout=RUN_TIMEOUT_S, log=log)
        if sample.returncode != expect_rc:
            self.unexpected.append(f"{key}: exit {sample.returncode} ({log})")
            tail = log.read_text(errors="replace")[-1500:]
            print(f"bench: {key}: exit {sample.returncode}, expected {expect_rc}\n{tail}")
        self.rows.setdefault(key, []).append(sample)
        print(f"bench: {key}: {sample.wall_s:.2f} s {sample.peak_mb:.0f} MB", file=sys.stderr)

    def rounds(self, cases: dict[str, list[str]], expect_rc: int, warmup: bool = False) -> None:
        if warmup:
            for key, cmd in cases.items():
                self.measure(key, cmd, expect_rc)
                self.rows.pop(key)
        for _ in range(self.repeat):
            for key, cmd in cases.items():
                self.measure(key, cmd, expect_rc)

    def floor(self, n: int) -> list[str]:
        """bench/floor.py over the first n copies at once: the same facts, the fastest way."""
        cmd = [PY, str(ROOT / "bench" / "floor.py")]
        for bed in self.beds[:n]:
            cmd += ["--project", bed.project, "--health-url", bed.health_url, "--dsn", bed.dsn]
        return [*cmd, "--edge", "backend:db:5432", "--datafs", "db:/var/lib/postgresql/data"]

    def healthy(self) -> None:
        cases = {}
        for n in self.sizes:
            cases[f"{n} stacks, serial"] = self.suite(self.dirs(n))
            cases[f"{n} stacks, -n auto"] = self.suite(self.dirs(n), "-n", "auto")
            cases[f"{n} stacks, floor"] = self.floor(n)
        self.rounds(cases, 0, warmup=True)

    def huge_body(self) -> None:
        n = max(self.sizes)
        with HugeBody(HUGE_BYTES) as server:
            cases = {}
            for size in sorted({1, n}):
                directory = self.dirs(size, "-huge")
                first = directory / f"{self.beds[0].project}.toml"
                first.write_text(first.read_text().replace(self.beds[0].health_url, server.url))
                cases[f"{size} stacks, one 4 GiB health body, serial"] = self.suite(directory)
            self.rounds(cases, 0)
            self.notes["huge_most_bytes_sent"] = server.most_sent

    def worst_case(self) -> None:
        n = max(self.sizes)

        def hang(bed: Testbed) -> None:
            bed.inject("health-hang")
            bed.inject("db-hung")

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(hang, self.beds[:n]))
        cases = {}
        for size in sorted({1, n}):
            cases[f"{size} stacks all hung, serial"] = self.suite(self.dirs(size))
            cases[f"{size} stacks all hung, -n auto"] = self.suite(self.dirs(size), "-n", "auto")
        self.rounds(cases, 1)

    def results(self) -> dict[str, Any]:
        rows = {
            key: {
                "median_s": round(statistics.median(s.wall_s for s in samples), 3),
                "min_s": min(s.wall_s for s in samples),
                "max_s": max(s.wall_s for s in samples),
                "peak_mb": max(s.peak_mb for s in samples),
                "samples": [s.to_json() for s in samples],
            }
            for key, samples in self.rows.items()
        }
        n = max(self.sizes)

        def median(key: str) -> float:
            return float(rows[key]["median_s"])

        targets: dict[str, Any] = {}
        if {"1 stacks, serial", f"{n} stacks, serial"} <= set(rows):
            ratio = median(f"{n} stacks, serial") / median("1 stacks, serial")
            targets[f"{n} stacks serial / 1 stack serial <= 3"] = [round(ratio, 2), ratio <= 3]
            peak = rows[f"{n} stacks, serial"]["peak_mb"]
            targets[f"peak RSS {n} stacks serial <= 200 MB"] = [peak, peak <= 200]
        for size in self.sizes:
            if f"{size} stacks, floor" in rows:
                ratio = median(f"{size} stacks, serial") / median(f"{size} stacks, floor")
                targets[f"{size} stacks: serial / floor (reported)"] = [round(ratio, 2), True]
            if size >= 8 and {f"{size} stacks, -n auto", f"{size} stacks, serial"} <= set(rows):
                auto, serial = median(f"{size} stacks, -n auto"), median(f"{size} stacks, serial")
                targets[f"{size} stacks: -n auto <= serial"] = [
                    round(auto / serial, 2),
                    auto <= serial,
                ]
        return {
            "machine": {
                "cpus": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            "repeat": self.repeat,
            "notes": self.notes,
            "unexpected_exits": self.unexpected,
            "rows": rows,
            "targets": targets,
        }


def table(result: dict[str, Any]) -> str:
    lines = [f"{'row':45} {'median s':>9} {'min':>6} {'max':>6} {'peak MB':>8}"]
    for key, row in result["rows"].items():
        lines.append(
            f"{key:45} {row['median_s']:9.2f} {row['min_s']:6.2f} {row['max_s']:6.2f}"
            f" {row['peak_mb']:8.1f}"
        )
    lines.append("")
    for name, (value, met) in result["targets"].items():
        lines.append(f"{name:45} {value:9}   {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--sizes", type=lambda s: sorted({int(x) for x in s.split(",")}), default=[1, 8, 32]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-fleet.json")
    parser.add_argument("--prefix", default=testbed_fleet.PREFIX)
    parser.add_argument("--backend-base", type=int, default=testbed_fleet.BACKEND_BASE)
    parser.add_argument("--db-base", type=int, default=testbed_fleet.DB_BASE)
    parser.add_argument("--phases", default="healthy,huge_body,worst_case")
    parser.add_argument("--keep", action="store_true", help="leave the copies running")
    args = parser.parse_args()

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    bench = FleetBench(args)
    try:
        bench.up()
        for phase in args.phases.split(","):
            started = time.monotonic()
            getattr(bench, phase)()
            print(f"bench: {phase} done in {time.monotonic() - started:.0f} s", file=sys.stderr)
        result = bench.results()
    except KeyboardInterrupt:
        print("bench: interrupted, removing the fleet", file=sys.stderr)
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
