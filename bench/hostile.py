"""Benchmark row "hostile inputs" (issue 9): each must finish within probe_s + 1 s.

    .venv/bin/python bench/hostile.py [--repeat 5] [--out reports/bench-hostile.json]

Brings up its own testbed project (stackcheck-bench-hostile, loopback ports
18791 / 16191) and removes it at the end, also on Ctrl-C. Every case is
`python -m pytest checks/ --stack S` in a subprocess, timed with its whole
process tree's peak memory (bench/measure.py), interpreter start-up included:

- 29 KB PostgreSQL FATAL: db's DSN points at a loopback fake server that
  answers the startup packet with an ErrorResponse whose message is 29 KB
  (long runs of letters: what made the old redaction quadratic, 34.9 s);
- 63-character service name: the longest name the loader accepts;
- 100,000-character service name: the loader's one-line refusal (exit 4);
- catastrophic ignore pattern: the issue's ``error (a+)+$`` and
  ``error (a|a)+$`` (which the regex package cannot defuse: it gives up at
  its budget) against the line "error aaa…a!" in the backend's log;
- 10 MB log line: one 10 MB line then an ERROR line, with tail = 2000 (the
  tail covers the whole line): wall time and peak memory of the run;
- 160 lines of 1 MB with tail = 10,000 (the largest tail the loader allows):
  the issue's "661 MB RSS" case.

For both log cases the reading step alone is measured too, in a fresh
interpreter: the whole tail at once, as the probe read it before issue 9, and
``read_newest_logs`` now.

Then the log-pattern guard by itself, in this process: the import cost of
regex, the matching cost per line against plain ``re``, and the time
``log_facts`` takes to give up on the catastrophic pattern with the default
probe deadline. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socketserver
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import Sample, run  # noqa: E402

from testbed import CANARY_PASSWORD, Testbed  # noqa: E402

PY = sys.executable
PROBE_S = 5.0  # [timeouts] probe_s default (src/stackcheck/config.py)
BOUND_S = PROBE_S + 1.0  # README.md, "Bound": probe_s + 1 s, interpreter start-up included
RUN_TIMEOUT_S = 120.0
PG_MESSAGE_BYTES = 29 * 1024
CATASTROPHIC_LINE = "error " + "a" * 32 + "!"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
LONG_LINE_BYTES = 10_000_000


class FakePostgres(socketserver.ThreadingTCPServer):
    """Just enough of the PostgreSQL protocol to refuse: an ErrorResponse after the startup packet."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, message: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _PgHandler)
        self.message = message
        self.answered = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> FakePostgres:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _PgHandler(socketserver.BaseRequestHandler):
    SSL_REQUEST, GSS_REQUEST = 80877103, 80877104

    def handle(self) -> None:
        server = cast(FakePostgres, self.server)
        self.request.settimeout(5)
        try:
            while True:
                head = self._read(8)
                length, code = struct.unpack("!II", head)
                self._read(length - 8)
                if code in (self.SSL_REQUEST, self.GSS_REQUEST):
                    self.request.sendall(b"N")  # no encryption: the client goes on in plain text
                    continue
                fields = b"SFATAL\0VFATAL\0C28P01\0M" + server.message + b"\0\0"
                self.request.sendall(b"E" + struct.pack("!I", 4 + len(fields)) + fields)
                server.answered += 1
                return
        except (OSError, struct.error):
            return

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                raise OSError("client hung up")
            data += chunk
        return data


class Hostile:
    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.tmp = Path(tempfile.mkdtemp(prefix="stackcheck-hostile-"))
        self.bed = Testbed(project="stackcheck-bench-hostile", backend_port=18791, db_port=16191)
        self.env = {**os.environ, "PGPASSWORD": CANARY_PASSWORD}
        self.env.pop("PYTEST_ADDOPTS", None)
        self.rows: dict[str, list[Sample]] = {}
        self.expected: dict[str, int] = {}
        self.notes: dict[str, Any] = {}
        self.runs = 0

    def stack(self, name: str, text: str) -> Path:
        path = self.tmp / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def suite(self, stack: Path) -> list[str]:
        return [
            PY,
            "-m",
            "pytest",
            "checks/",
            "-p",
            "no:cacheprovider",
            f"--reports-dir={self.tmp / 'reports'}",
            "--stack",
            str(stack),
        ]

    def rounds(self, cases: dict[str, tuple[list[str], int]]) -> None:
        """Each case once per round, interleaved, so drifting load hits all alike."""
        for _ in range(self.repeat):
            for key, (cmd, expect_rc) in cases.items():
                self.runs += 1
                log = self.tmp / f"{self.runs:03d}.log"
                sample = run(cmd, cwd=ROOT, env=self.env, timeout=RUN_TIMEOUT_S, log=log)
                self.rows.setdefault(key, []).append(sample)
                self.expected[key] = expect_rc
                if sample.returncode != expect_rc:
                    tail = log.read_text(errors="replace")[-1500:]
                    print(f"hostile: {key}: exit {sample.returncode}, expected {expect_rc}\n{tail}")

    # -------------------------------------------------------------- phases

    def clean_stack(self) -> None:
        base = self.bed.stack_file_text()
        with FakePostgres(b"password authentication failed: " + b"a" * PG_MESSAGE_BYTES) as pg:
            fake_dsn = f"postgresql://scheduler@127.0.0.1:{pg.port}/scheduler"
            pg_stack = self.stack("pg-29k", base.replace(self.bed.dsn, fake_dsn))
            name = "s" + "e" * 61 + "x"  # 63 characters: compose's longest
            assert len(name) == 63
            long_ok = self.stack("name-63", base + f'\n[services.{name}]\ndepends_on = ["db"]\n')
            too_long = self.stack("name-100k", base + f"\n[services.{'n' * 100_000}]\nport = 1\n")
            # pg_ready and pg_connections fail on the refusal; the 63-character
            # service has no container, so its container checks fail.
            self.rounds(
                {
                    "29 KB PostgreSQL FATAL": (self.suite(pg_stack), 1),
                    "63-character service name": (self.suite(long_ok), 1),
                    "100,000-character service name (refused)": (self.suite(too_long), 4),
                }
            )
            self.notes["fake_postgres_answers"] = pg.answered
        refusal = Path(self.rows["100,000-character service name (refused)"][-1].log).read_text()
        self.notes["refusal_lines"] = len(refusal.strip().splitlines())
        self.notes["refusal_chars"] = len(refusal)

    def catastrophic_patterns(self) -> None:
        self.bed.exec(
            "backend", ["sh", "-c", 'printf "%s\\n" "$0" >/proc/1/fd/2', CATASTROPHIC_LINE]
        )
        base = self.bed.stack_file_text()
        nested = self.stack("ignore-nested", base + '\n[logs]\nignore = ["error (a+)+$"]\n')
        overlap = self.stack("ignore-overlap", base + '\n[logs]\nignore = ["error (a|a)+$"]\n')
        # (a+)+$: regex defuses it, the line is bad (exit 1); (a|a)+$: it gives
        # up, and the logs check cannot check (exit 6: unknown).
        self.rounds(
            {
                "ignore = error (a+)+$": (self.suite(nested), 1),
                "ignore = error (a|a)+$": (self.suite(overlap), 6),
            }
        )
        log = Path(self.rows["ignore = error (a|a)+$"][-1].log).read_text(errors="replace")
        said = [line.strip() for line in log.splitlines() if "backtracks catastrophically" in line]
        self.notes["catastrophic_reason"] = said[0][:400] if said else None

    def long_line(self) -> None:
        script = (
            f"head -c {LONG_LINE_BYTES} /dev/zero | tr '\\0' x >/proc/1/fd/2; "
            'echo >/proc/1/fd/2; echo "ERROR: after a 10 MB line" >/proc/1/fd/2'
        )
        self.bed.exec("backend", ["sh", "-c", script])
        stack = self.stack("long-line", self.bed.stack_file_text() + "\n[logs]\ntail = 2000\n")
        self.rounds({"10 MB log line, tail 2000": (self.suite(stack), 1), **self.reads(2000)})
        self.read_notes("10 MB line")

    def many_long_lines(self) -> None:
        """The issue's 661 MB case: a large tail of 1 MB lines (160 of them: 10,000 entries)."""
        script = (
            "for i in $(seq 160); do head -c 1000000 /dev/zero | tr '\\0' y; echo; done "
            ">/proc/1/fd/2"
        )
        self.bed.exec("backend", ["sh", "-c", script])
        stack = self.stack("tail-10000", self.bed.stack_file_text() + "\n[logs]\ntail = 10000\n")
        # The 10 MB line's ERROR line is older than the newest 1 MiB now: exit 0.
        self.rounds({"160 lines of 1 MB, tail 10000": (self.suite(stack), 0), **self.reads(10000)})
        self.read_notes("1 MB lines")

    READ_WHOLE = "  reading it whole (as before issue 9)"
    READ_NEWEST = "  reading the newest 1 MiB (now)"

    def reads(self, tail: int) -> dict[str, tuple[list[str], int]]:
        """The reading step alone, in a fresh interpreter each: the whole tail at once, as
        the probe read it before issue 9, and the newest 1 MiB now (bytes, lines, seconds)."""
        find = (
            "import docker, time; c = docker.from_env(); "
            f"[b] = c.containers.list(filters={{'label': ['{PROJECT_LABEL}={self.bed.project}', "
            f"'{SERVICE_LABEL}=backend']}}); since = int(time.time() - 600); "
        )
        done = (
            "lines = raw.decode('utf-8', errors='replace').splitlines(); "
            "print(len(raw), len(lines), round(time.perf_counter() - t, 3))"
        )
        before = find + (
            f"t = time.perf_counter(); raw = b.logs(stdout=True, stderr=True, tail={tail}, "
            "since=since); " + done
        )
        now = find + (
            "from stackcheck.probes.docker_probe import read_newest_logs; "
            f"t = time.perf_counter(); raw = read_newest_logs(b, {tail}, since); " + done
        )
        return {self.READ_WHOLE: ([PY, "-c", before], 0), self.READ_NEWEST: ([PY, "-c", now], 0)}

    def read_notes(self, case: str) -> None:
        """Rename the reading rows after their case; note bytes, lines and read seconds."""
        for key in (self.READ_WHOLE, self.READ_NEWEST):
            samples = self.rows.pop(key)
            name = f"{key} [{case}]"
            self.rows[name] = samples
            self.expected[name] = self.expected.pop(key)
            said = [Path(s.log).read_text().split() for s in samples]
            read_s = statistics.median(float(x[2]) for x in said if len(x) > 2)
            self.notes[f"{name.strip()}: bytes, lines, read s"] = [*said[-1][:2], read_s]

    def guard(self) -> None:
        """The log-pattern guard alone: import cost, cost per line, time to give up."""
        imports = []
        for _ in range(max(7, self.repeat)):
            done = subprocess.run(
                [PY, "-X", "importtime", "-c", "import re, threading; import regex"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            for line in done.stderr.splitlines():
                parts = [p.strip() for p in line.split("|")]
                if len(parts) == 3 and parts[2] == "regex":
                    imports.append(int(parts[1]) / 1000)
        self.notes["regex_import_ms_median"] = round(statistics.median(imports), 1)

        from stackcheck.config import LogRules
        from stackcheck.probes import logmatch
        from stackcheck.probes.deadline import Deadline
        from stackcheck.probes.docker_probe import log_facts

        words = [
            "GET",
            "/api/v1/users",
            "200",
            "304",
            "INFO",
            "request",
            "completed",
            "in",
            "ms",
            "session",
        ]
        lines = [" ".join(words[(i + k) % len(words)] for k in range(10)) for i in range(20_000)]
        rules = LogRules(ignore=("connection reset by peer",))
        plain_bad = re.compile(logmatch.bad_line_source(rules.patterns), re.IGNORECASE)
        plain_ignore = [re.compile(p) for p in rules.ignore]
        guarded = logmatch.matcher(rules.patterns, rules.ignore)

        def plain() -> None:
            for line in lines:
                if plain_bad.search(line):
                    any(p.search(line) for p in plain_ignore)

        def with_guard() -> None:
            until = time.monotonic() + 60
            for line in lines:
                guarded.bad_at(line, until)

        def best(task: Callable[[], None]) -> float:
            return min(_timed(task) for _ in range(5)) / len(lines) * 1e6

        self.notes["per_line_us_re"] = round(best(plain), 2)
        self.notes["per_line_us_guard"] = round(best(with_guard), 2)

        class OneLine:
            def logs(self, **kw: Any) -> Any:
                return iter([CATASTROPHIC_LINE.encode() + b"\n"])

        give_up = []
        for _ in range(3):
            started = time.monotonic()
            found = log_facts(
                cast(Any, OneLine()),
                "backend",
                LogRules(ignore=("error (a|a)+$",)),
                Deadline(PROBE_S),
            )
            give_up.append(time.monotonic() - started)
            assert found.blind, found
        self.notes["give_up_s_at_probe_s_5"] = [round(s, 2) for s in give_up]

    # ------------------------------------------------------------- results

    def results(self) -> dict[str, Any]:
        rows = {}
        for key, samples in self.rows.items():
            walls = [s.wall_s for s in samples]
            rows[key] = {
                "median_s": round(statistics.median(walls), 3),
                "max_s": max(walls),
                "peak_mb": max(s.peak_mb for s in samples),
                "exit": sorted({s.returncode for s in samples}),
                "expected_exit": self.expected[key],
                "within_bound": max(walls) <= BOUND_S if key[0] != " " else None,
                "samples": [s.to_json() for s in samples],
            }
        return {
            "bound_s": BOUND_S,
            "repeat": self.repeat,
            "loadavg": os.getloadavg(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "rows": rows,
            "notes": self.notes,
        }


def _timed(task: Callable[[], None]) -> float:
    started = time.perf_counter()
    task()
    return time.perf_counter() - started


def table(result: dict[str, Any]) -> str:
    lines = [f"{'case':56} {'median s':>9} {'max s':>6} {'peak MB':>8}  exit  <= {BOUND_S:g} s"]
    for key, row in result["rows"].items():
        exits = ",".join(map(str, row["exit"]))
        lines.append(
            f"{key:56} {row['median_s']:9.2f} {row['max_s']:6.2f} {row['peak_mb']:8.1f}  "
            f"{exits:>4}  {({True: 'yes', False: 'NO'}).get(row['within_bound'], '')}"
        )
    lines.append("")
    lines += [f"{k}: {v}" for k, v in result["notes"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-hostile.json")
    args = parser.parse_args()

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    bench = Hostile(max(1, args.repeat))
    try:
        bench.bed.up()
        phases = (
            bench.clean_stack,
            bench.catastrophic_patterns,
            bench.long_line,
            bench.many_long_lines,
            bench.guard,
        )
        for phase in phases:
            print(f"hostile: {phase.__name__} ...", file=sys.stderr, flush=True)
            phase()
        result = bench.results()
    except KeyboardInterrupt:
        print("hostile: interrupted, removing the testbed project", file=sys.stderr)
        return 130
    finally:
        bench.bed.down()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten: {args.out}; run logs in {bench.tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
