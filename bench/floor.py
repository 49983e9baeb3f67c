"""The floor: the facts the suite gathers, by the fastest honest means, all at once.

The same facts as one healthy run of ``pytest checks/`` on a stack with a
backend (health URL, depends on db) and a db (DSN, data directory): the
containers of the compose project (one list), per container one inspect and
its die/oom events in the stable window, its newest log lines matched against
the default patterns, memory and CPU (the container's cgroup files read on
this host, the CPU counters twice 0.2 s apart, as the suite does with a local
engine; the suite's script by exec where the host does not show them),
one exec per network edge (the suite's
resolve/ping/port script), ``df`` of db's data directory in db, one
PostgreSQL connect + the headroom query, one HTTP GET of the health URL; and
once per run, the Docker host's own facts (the host checks): a dockerd
process, the free space where the engine keeps its data, the host's memory.
Several stacks (``--project``, ``--health-url`` and ``--dsn`` repeated, in the
same order; the edges and data directories are each stack's) are all probed at
once, as a fleet run of the suite gathers them.

Fastest honest means: a bare interpreter (no pytest, no plugins, no reports,
no verdicts), the Docker API spoken directly over the engine's unix socket with
``http.client`` (no docker SDK: a local engine only), the health URL with
``http.client``, PostgreSQL with psycopg (libpq: the one library kept, imported
in its own thread while the engine is asked), every probe in its own thread,
the host's facts from /proc and statvfs (the suite runs testinfra's commands).
The scripts run in the containers are the suite's own (read from its
sources as text, not imported), so the work done inside is the same.

    python bench/floor.py --project P --health-url URL --dsn DSN [--edge backend:db:5432]
                          [--datafs db:/var/lib/postgresql/data] [--project P2 --health-url ...]

Prints one JSON line (per-probe seconds); exit 0 when every probe answered.
"""

from __future__ import annotations

import argparse
import ast
import http.client
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOCKET = "/var/run/docker.sock"
LABEL = "com.docker.compose.project"
# The suite's defaults (src/stackcheck/config.py): [logs] and [thresholds].
TAIL, SINCE_S, STABLE_WINDOW_S = 200, 600, 300
PATTERNS = re.compile(r"error|exception|fatal|traceback|panic", re.IGNORECASE)
HEADROOM_SQL = (
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int "
    "+ coalesce(current_setting('reserved_connections', true)::int, 0), "
    "(SELECT count(*) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int"
)


def suite_constant(module: str, name: str) -> Any:
    """A string constant of the suite's source (its scripts), read without importing it."""
    tree = ast.parse((ROOT / "src" / "stackcheck" / "probes" / module).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not in {module}")


CGROUP_SCRIPT = suite_constant("cgroup.py", "SCRIPT")
NET_SCRIPT = suite_constant("network.py", "SCRIPT")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def engine(method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One Docker API call on a connection of its own (threads never share one)."""
    conn = UnixHTTPConnection(SOCKET)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def frames(raw: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr of a multiplexed (non-tty) stream."""
    out, err, at = bytearray(), bytearray(), 0
    while at + 8 <= len(raw):
        kind, size = raw[at], struct.unpack(">I", raw[at + 4 : at + 8])[0]
        (err if kind == 2 else out).extend(raw[at + 8 : at + 8 + size])
        at += 8 + size
    return bytes(out), bytes(err)


def exec_in(container: str, argv: list[str]) -> tuple[bytes, int]:
    status, created = engine(
        "POST",
        f"/containers/{container}/exec",
        {"AttachStdout": True, "AttachStderr": True, "Cmd": argv},
    )
    if status != 201:
        raise RuntimeError(f"exec create: {status} {created[:200]!r}")
    exec_id = json.loads(created)["Id"]
    status, raw = engine("POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    if status != 200:
        raise RuntimeError(f"exec start: {status}")
    code = json.loads(engine("GET", f"/exec/{exec_id}/json")[1])["ExitCode"]
    return frames(raw)[0], code


def container_facts(cid: str) -> dict[str, Any]:
    status, body = engine("GET", f"/containers/{cid}/json")
    if status != 200:
        raise RuntimeError(f"inspect: {status}")
    now = int(time.time())
    filters = json.dumps({"type": ["container"], "container": [cid], "event": ["die", "oom"]})
    query = urllib.parse.urlencode(
        {"since": now - STABLE_WINDOW_S, "until": now, "filters": filters}
    )
    status, events = engine("GET", f"/events?{query}")
    if status != 200:
        raise RuntimeError(f"events: {status}")
    state = json.loads(body)["State"]
    return {"state": state["Status"], "events": events.count(b"\n")}


def log_facts(cid: str) -> int:
    query = urllib.parse.urlencode(
        {"stdout": 1, "stderr": 1, "tail": TAIL, "since": int(time.time()) - SINCE_S}
    )
    status, raw = engine("GET", f"/containers/{cid}/logs?{query}")
    if status != 200:
        raise RuntimeError(f"logs: {status}")
    out, err = frames(raw)
    lines = (out + err).decode("utf-8", errors="replace").splitlines()
    return sum(1 for line in lines if PATTERNS.search(line))


def _read(path: str) -> str:
    try:
        with open(path) as found:
            return found.read()
    except OSError:
        return ""


def host_cgroup_reading(paths: dict[str, str]) -> str:
    """What the suite reads on the host for a local engine (cgroup.read_on_host):
    memory, limit, inactive file pages, CPU quota, and the CPU counters twice."""
    if "" in paths:
        where = "/sys/fs/cgroup" + paths[""]
        names = ["memory.current", "memory.max", "memory.stat", "cpu.max"]
        texts = [_read(f"{where}/{name}") for name in names]
        usage = f"{where}/cpu.stat"
    else:
        dirs = {c: f"/sys/fs/cgroup/{c}{p}" for c, p in paths.items()}
        memory = next(d for c, d in dirs.items() if "memory" in c.split(","))
        cpu = next((d for c, d in dirs.items() if "cpu" in c.split(",")), memory)
        names = ["memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat"]
        texts = [_read(f"{memory}/{name}") for name in names]
        texts += [_read(f"{cpu}/cpu.cfs_quota_us"), _read(f"{cpu}/cpu.cfs_period_us")]
        usage = next(
            (f"{d}/cpuacct.usage" for c, d in dirs.items() if "cpuacct" in c.split(",")), ""
        )
    texts += [_read("/proc/meminfo"), _read(usage), _read("/proc/stat")]
    time.sleep(0.2)
    texts += [_read(usage), _read("/proc/stat")]
    if not texts[0] or not texts[-2]:
        raise RuntimeError("cgroup files unreadable")
    return texts[0].strip()


def stats_facts(cid: str) -> str:
    """Memory and CPU read on this host from the container's cgroup, as the suite
    reads them with a local engine; by the suite's script in an exec where the
    host does not show the cgroup."""
    status, body = engine("GET", f"/containers/{cid}/json")
    pid = json.loads(body)["State"]["Pid"] if status == 200 else 0
    paths: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid else []:
        _, controllers, path = line.split(":", 2)
        if cid in path and ({"memory", "cpu", "cpuacct"} & set(controllers.split(","))):
            paths[controllers] = path
        elif cid in path and line.startswith("0::"):
            paths[""] = path
    if len(paths) > 1:  # v1 controllers: a hybrid host's "0::" line is not where they are
        paths.pop("", None)
    if paths:
        return host_cgroup_reading(paths)
    argv = ["sh", "-c", CGROUP_SCRIPT, "stackcheck", "0.2", "/sys/fs/cgroup", "/proc"]
    out, code = exec_in(cid, argv)
    if code != 0 or not out.endswith(b"end ok\n"):
        raise RuntimeError(f"cgroup reading: exit {code}: {out[-200:]!r}")
    return out.decode().split("\n", 1)[0]


def net_facts(cid: str, target: str, port: str) -> None:
    out, code = exec_in(cid, ["sh", "-c", NET_SCRIPT, "stackcheck", target, port, "3"])
    verdicts = {line.split(" ")[0]: line.split(" ")[1] for line in out.decode().splitlines()}
    if code != 0 or set(verdicts.values()) != {"ok"}:
        raise RuntimeError(f"{target}:{port}: {out.decode(errors='replace')}")


def datafs_facts(cid: str, path: str) -> None:
    out, code = exec_in(cid, ["df", "-Pk", "--", path])
    fields = out.decode(errors="replace").strip().splitlines()[-1].split()
    if code != 0 or not all(f.isdigit() for f in fields[1:4]):
        raise RuntimeError(f"df: exit {code}: {out[:200]!r}")


def pg_facts(dsn: str) -> None:
    import psycopg  # in this thread: loads while the engine is asked

    options = "-c default_transaction_read_only=on -c statement_timeout=2000"
    with psycopg.connect(
        dsn, connect_timeout=3, autocommit=True, application_name="floor", options=options
    ) as conn:
        conn.execute(HEADROOM_SQL).fetchone()


def http_facts(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=5)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read(4096)
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status}")
        json.loads(body)
    finally:
        conn.close()


def host_facts(data_root: str = "/var/lib/docker") -> None:
    """What the host checks read: a dockerd process, the data root's free space, memory."""
    engines = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                engines += (entry / "comm").read_text().strip() == "dockerd"
            except OSError:
                continue  # exited meanwhile
    if not engines:
        raise RuntimeError("no dockerd process")
    disk = os.statvfs(data_root)
    if not disk.f_blocks:
        raise RuntimeError(f"statvfs {data_root}: no blocks")
    meminfo = Path("/proc/meminfo").read_text()
    if "MemAvailable:" not in meminfo:
        raise RuntimeError("no MemAvailable in /proc/meminfo")


class Probes:
    """Each probe on a thread of its own; results by name."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: dict[str, tuple[float, bool]] = {}

    def start(self, name: str, task: Any, *args: Any) -> None:
        def run() -> None:
            started = time.monotonic()
            try:
                task(*args)
                ok = True
            except Exception as exc:
                print(f"floor: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
                ok = False
            self.results[name] = (time.monotonic() - started, ok)

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--project", required=True, action="append")
    parser.add_argument("--health-url", required=True, action="append")
    parser.add_argument(
        "--dsn", required=True, action="append", help="libpq DSN; password from PGPASSWORD"
    )
    parser.add_argument("--edge", action="append", default=[], metavar="FROM:TO:PORT")
    parser.add_argument("--datafs", action="append", default=[], metavar="SERVICE:PATH")
    args = parser.parse_args()
    if not len(args.project) == len(args.health_url) == len(args.dsn):
        parser.error("--project, --health-url and --dsn must be given as many times each")

    started = time.monotonic()
    probes = Probes()
    probes.start("host", host_facts)
    stacks = list(zip(args.project, args.health_url, args.dsn, strict=True))
    for project, url, dsn in stacks:
        probes.start(f"{project}/pg", pg_facts, dsn)
        probes.start(f"{project}/http", http_facts, url)
    listed: list[dict[str, Any]] = []
    for project, _, _ in stacks:
        filters = urllib.parse.quote(json.dumps({"label": [f"{LABEL}={project}"]}))
        status, body = engine("GET", f"/containers/json?all=1&filters={filters}")
        found = json.loads(body) if status == 200 else []
        listed += found
        by_service = {c["Labels"]["com.docker.compose.service"]: c for c in found}
        for service, container in by_service.items():
            cid, where = container["Id"], f"{project}/{service}"
            if container["State"] == "running":
                probes.start(f"stats:{where}", stats_facts, cid)
            probes.start(f"container:{where}", container_facts, cid)
            probes.start(f"logs:{where}", log_facts, cid)
        for edge in args.edge:
            source, target, port = edge.split(":")
            cid = by_service[source]["Id"]
            probes.start(f"net:{project}/{source}->{target}", net_facts, cid, target, port)
        for spec in args.datafs:
            service, path = spec.split(":", 1)
            probes.start(
                f"datafs:{project}/{service}", datafs_facts, by_service[service]["Id"], path
            )
    probes.join()
    each = {name: round(seconds, 3) for name, (seconds, _) in sorted(probes.results.items())}
    print(json.dumps({"probes_s": round(time.monotonic() - started, 3), "each": each}))
    answered = len(probes.results) == len(probes.threads)
    return 0 if listed and answered and all(ok for _, ok in probes.results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
