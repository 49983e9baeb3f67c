"""The in-container paths against the checker-side ones, on one running testbed.

Rows, run round-robin (one of each per round, so load from other jobs hits all
alike): the PostgreSQL probe through the DSN (psycopg from here) and inside the
db container (pg_isready + psql through the engine); the health probe from here
and with curl inside the backend; and the whole suite, `pytest checks/`, with
the published stack file and with the in-container one. Figures only: it never
fails. Needs a running testbed with its database port published, so that both
paths reach the same stack:

    python -m testbed --project P --backend-port B --db-port D up
    python bench/pg_paths.py --project P --backend-port B --db-port D [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from stackcheck.config import load_stack  # noqa: E402
from stackcheck.probes import docker_probe, http, postgres  # noqa: E402
from stackcheck.probes.deadline import Deadline  # noqa: E402
from testbed import CANARY_PASSWORD, Testbed  # noqa: E402


def _suite(stack_file: Path, reports: Path) -> Callable[[], Any]:
    def run() -> bool:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "checks/", "-p", "no:cacheprovider", "-q"),
                *("--stack", str(stack_file), f"--reports-dir={reports}"),
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
        return done.returncode == 0

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--backend-port", type=int, required=True)
    parser.add_argument("--db-port", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=20, help="probe samples per row")
    parser.add_argument("--suite-repeat", type=int, default=5, help="suite runs per row")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-pg-paths.json")
    args = parser.parse_args()
    os.environ["PGPASSWORD"] = CANARY_PASSWORD  # the DSN path's; the exec path needs none

    bed = Testbed(args.project, args.backend_port, args.db_port)
    scratch = Path(tempfile.mkdtemp(prefix="stackcheck-bench-"))
    published = bed.write_stack_file(scratch / "published.toml")
    inside_file = scratch / "inside.toml"
    inside_file.write_text(bed.inside_stack_file_text())
    stack = load_stack(published)
    client = docker_probe.connect(stack, Deadline(10))
    groups = docker_probe.find_containers(client, stack)
    db, backend = groups["db"][0], groups["backend"][0]

    def pg_dsn() -> bool:
        facts = postgres.probe("db", bed.dsn, 3.0)
        return facts.ping == "accepting" and facts.in_use is not None

    def pg_exec() -> bool:
        facts = postgres.exec_probe(db, "db", "scheduler", "scheduler", 3.0)
        return facts.ping == "accepting" and facts.in_use is not None

    def health_host() -> bool:
        facts = http.http_facts("backend", bed.health_url, Deadline(5), 3.0)
        return facts.status == 200

    def health_exec() -> bool:
        url = "http://127.0.0.1:8000/health"
        facts = http.exec_facts(backend, "backend", url, Deadline(5), 3.0)
        return facts.status == 200

    rows: dict[str, tuple[Callable[[], Any], int]] = {
        "pg probe, DSN (psycopg from the checker)": (pg_dsn, args.repeat),
        "pg probe, exec (pg_isready + psql in db)": (pg_exec, args.repeat),
        "health probe, host (requests)": (health_host, args.repeat),
        "health probe, exec (curl in backend)": (health_exec, args.repeat),
        "suite, published stack file (DSN, host)": (
            _suite(published, scratch / "r1"),
            args.suite_repeat,
        ),
        "suite, in-container stack file (exec, exec)": (
            _suite(inside_file, scratch / "r2"),
            args.suite_repeat,
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in rows}
    # Runs that did not give the healthy answer (a timeout on a loaded machine):
    # timed all the same, and counted.
    wrong: dict[str, int] = dict.fromkeys(rows, 0)
    load_before = os.getloadavg()
    for task, _ in rows.values():  # one unmeasured warm-up each
        task()
    for round_ in range(max(n for _, n in rows.values())):
        for name, (task, count) in rows.items():
            if round_ < count:
                started = time.perf_counter()
                ok = task()
                samples[name].append(time.perf_counter() - started)
                wrong[name] += not ok
    load_after = os.getloadavg()

    result = {
        "load_before": load_before,
        "load_after": load_after,
        "rows": {
            name: {
                "median_s": statistics.median(values),
                "min_s": min(values),
                "max_s": max(values),
                "n": len(values),
                "not_healthy": wrong[name],
            }
            for name, values in samples.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print("| row | n | median ms | min | max | not healthy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in result["rows"].items():
        print(
            f"| {name} | {row['n']} | {1000 * row['median_s']:.0f} | "
            f"{1000 * row['min_s']:.0f} | {1000 * row['max_s']:.0f} | {row['not_healthy']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
