"""Measure one command: wall time, and peak memory of its whole process tree.

Two memory figures per run, both read from /proc every 25 ms:
- ``tree_peak_mb``: the largest sum of VmRSS over the command and all its
  descendants (what the machine had to hold at once; with pytest-xdist that is
  the controller plus its workers; shared pages count once per process). A
  child that has not exec'd yet (its command line is still its parent's) is
  not counted: it runs in its parent's pages (vfork shares them outright, fork
  copy-on-write), and counting it showed the suite's whole resident set twice
  whenever a sample fell between a fork of testinfra's local commands and its
  exec (seen in issue 11's fleet rows: 125 MB for a 63 MB run);
- ``hwm_mb``: the largest VmHWM (a process's own high-water mark, exact
  between samples) of any single process in the tree.
The run's peak is the larger of the two. (``ru_maxrss`` from wait4/getrusage is
not used: Linux carries the forking parent's high-water mark across exec, so
every child of this 35 MB benchmark would read at least 35 MB.) Every run is
bounded: past its timeout the whole process group is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SAMPLE_EVERY_S = 0.025


@dataclass
class Sample:
    wall_s: float
    tree_peak_mb: float
    hwm_mb: float
    returncode: int
    log: str

    @property
    def peak_mb(self) -> float:
        return max(self.tree_peak_mb, self.hwm_mb)

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "peak_mb": round(self.peak_mb, 1)}


def tree_rss(root: int) -> tuple[int, int]:
    """KiB resident in ``root`` and every descendant, and the largest VmHWM among them."""
    total, hwm, seen = 0, 0, set()
    todo: list[tuple[int, bytes | None]] = [(root, None)]  # (pid, its parent's command line)
    while todo:
        pid, parents = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if command != parents:  # else a fork not yet exec'd: its parent's pages
                total += int(fields.get("VmRSS", "0 kB").split()[0])
            hwm = max(hwm, int(fields.get("VmHWM", "0 kB").split()[0]))
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text()
                todo += [(int(c), command) for c in children.split()]
        except (OSError, ValueError):
            continue  # exited between two reads
    return total, hwm


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float, log: Path) -> Sample:
    """Run cmd to completion (or kill it at timeout); output goes to log."""
    peak = hwm = 0
    finished = threading.Event()
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

        def sample() -> None:
            nonlocal peak, hwm
            while True:  # first sample at once: a run may end before the second
                total, largest = tree_rss(proc.pid)
                peak, hwm = max(peak, total), max(hwm, largest)
                if finished.wait(SAMPLE_EVERY_S):
                    break

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            _, status = os.waitpid(proc.pid, 0)
        except BaseException:  # Ctrl-C: the child has its own session and did not get it
            kill()
            os.waitpid(proc.pid, 0)
            raise
        finally:
            wall = time.monotonic() - started
            killer.cancel()
            finished.set()
            sampler.join()
        kill()  # anything the command left behind in its group (a timed-out run's children)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(
        wall_s=round(wall, 3),
        tree_peak_mb=round(peak / 1024, 1),
        hwm_mb=round(hwm / 1024, 1),
        returncode=proc.returncode,
        log=str(log),
    )


class HugeBody(ThreadingHTTPServer):
    """Loopback health endpoint answering 200 with a JSON-ish body of ``size`` bytes."""

    daemon_threads = True

    def __init__(self, size: int) -> None:
        super().__init__(("127.0.0.1", 0), _HugeHandler)
        self.size = size
        self.most_sent = 0  # the most bytes one request got out before the client left

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/health"

    def __enter__(self) -> HugeBody:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _HugeHandler(BaseHTTPRequestHandler):
    server: HugeBody

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        size = self.server.size
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        head, chunk = b'{"status": "ok", "pad": "', b"x" * 65536
        sent = 0
        try:
            self.wfile.write(head)
            sent = len(head)
            while sent + len(chunk) <= size:
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.write(b"x" * (size - sent - 2) + b'"}')
            sent = size
        except OSError:
            pass  # the client hung up: what a capped reader does
        self.server.most_sent = max(self.server.most_sent, sent)
        self.close_connection = True
