"""The testbed itself, proven by raw observations rather than by its own word.

Every observation here goes around testbed/stack.py: the docker SDK's inspect,
stats, logs and events; pg_isready and psql run in the db container; a GET with
requests; ``nc``/``getent`` run in the backend container through testinfra's
docker backend; a psycopg connect from the host. A fault must change exactly
the observations its row in FAULT_TABLE names, and reset must bring back
HEALTHY with fresh containers wherever the fault had touched one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psycopg
import pytest
import requests
import testinfra
from docker.models.containers import Container

from testbed import CANARY_PASSWORD, FAULTS, Testbed

ROOT = Path(__file__).resolve().parents[2]
PG_ISREADY = "/usr/lib/postgresql/15/bin/pg_isready"
PGDATA = "/var/lib/postgresql/data"
ERROR_LINE = re.compile(r"error|exception|fatal|traceback|panic", re.IGNORECASE)
HTTP_DEADLINE_S = 4.0  # > the backend's 2 s database connect timeout


class Between:
    """Matches a number in [low, high]; compares equal so dict diffs stay readable."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and self.low <= other <= self.high

    def __hash__(self) -> int:
        return hash((self.low, self.high))

    def __repr__(self) -> str:
        return f"Between({self.low}, {self.high})"


class OneOf:
    def __init__(self, *values: object) -> None:
        self.values = values

    def __eq__(self, other: object) -> bool:
        return other in self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def __repr__(self) -> str:
        return f"OneOf{self.values}"


class Anything:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Anything()"


# What a healthy stack looks like, observation by observation.
HEALTHY: dict[str, Any] = {
    "backend.status": "running",
    "backend.restarts": 0,
    "backend.oom_killed": False,
    "backend.oom_events": 0,
    "backend.memory_pct": Between(1, 80),
    "backend.log_errors": False,
    "db.status": "running",
    "db.health": "healthy",
    "db.log_errors": False,
    "db: data filesystem used %": Between(1, 60),  # a fresh cluster: about 36 % of 128 MiB
    "GET /health": "200",
    "pg_isready": "accepting connections",
    "backend: nc -z db 5432": True,
    "backend: getent hosts db": True,
    "host: psycopg connect": "ok",
    "db: scheduler connections": Between(0, 3),
}

# fault -> (services it touches, so reset must recreate them; observations it changes)
FAULT_TABLE: dict[str, tuple[set[str], dict[str, Any]]] = {
    "backend-stopped": (
        {"backend"},
        {
            "backend.status": "exited",
            "backend.memory_pct": None,
            "GET /health": "down",
            "backend: nc -z db 5432": None,
            "backend: getent hosts db": None,
        },
    ),
    "backend-crashloop": (
        {"backend"},
        {
            # start.sh exits within ~20 ms, so "running" is seen now and then
            "backend.status": OneOf("restarting", "running"),
            "backend.restarts": Between(2, 1000),
            "backend.memory_pct": None,
            "backend.log_errors": True,  # FATAL: cannot load settings ...
            "GET /health": "down",
            "backend: nc -z db 5432": None,
            "backend: getent hosts db": None,
        },
    ),
    "backend-oom-killed": (
        {"backend"},
        {
            "backend.restarts": 1,
            "backend.oom_killed": True,
            "backend.oom_events": 1,
        },
    ),
    "backend-oom-crashloop": (
        {"backend"},
        {
            # each start is killed about half a second after it, between
            # back-off pauses that double: either state may be seen
            "backend.status": OneOf("restarting", "running"),
            "backend.restarts": Between(2, 1000),
            "backend.oom_killed": True,  # docker keeps it true while a restart runs
            "backend.oom_events": Between(2, 1000),
            "backend.memory_pct": Anything(),  # growing while up; None between starts
            "GET /health": "down",  # it grows at import, before uvicorn binds
            # an exec may land in a start, in a dying one, or between starts
            "backend: nc -z db 5432": OneOf(True, False, None),
            "backend: getent hosts db": OneOf(True, False, None),
        },
    ),
    "backend-memory-near-limit": ({"backend"}, {"backend.memory_pct": Between(90, 97)}),
    "backend-log-errors": ({"backend"}, {"backend.log_errors": True}),
    "health-500": ({"backend"}, {"GET /health": "500"}),
    "health-hang": ({"backend"}, {"GET /health": "timeout"}),
    "health-trickle": ({"backend"}, {"GET /health": "trickle"}),
    "db-stopped": (
        {"db"},
        {
            "db.status": "exited",
            "db.health": Anything(),  # docker keeps the last probe's verdict
            "db: data filesystem used %": None,
            "GET /health": "503",
            "pg_isready": None,
            "backend: nc -z db 5432": False,  # a stopped container's name leaves DNS
            "backend: getent hosts db": False,
            "host: psycopg connect": "refused",
            "db: scheduler connections": None,
        },
    ),
    "db-hung": (
        {"db"},
        {
            "db.health": Anything(),  # turns unhealthy after three failed probes
            "GET /health": "503",
            "pg_isready": "no response",
            "host: psycopg connect": "timeout",  # the kernel still accepts TCP
            "db: scheduler connections": None,
        },
    ),
    "db-connections-near-limit": ({"db"}, {"db: scheduler connections": Between(22, 24)}),
    "db-connections-exhausted": (
        {"db"},
        {
            "GET /health": "503",
            "host: psycopg connect": "reserved",
            "db: scheduler connections": 27,
            "db.log_errors": Anything(),  # FATAL lines for the refused connections
        },
    ),
    # Full, not yet out of space: PostgreSQL still serves; only df tells.
    "db-disk-full": ({"db"}, {"db: data filesystem used %": Between(95, 100)}),
    "network-partition": (
        {"backend"},
        {"GET /health": "503", "backend: nc -z db 5432": False},
    ),
    "dns-broken": (
        {"db"},
        {
            "GET /health": "503",
            "backend: nc -z db 5432": False,
            "backend: getent hosts db": False,
        },
    ),
}


# ------------------------------------------------------------- observations


def find(bed: Testbed, service: str) -> Container:
    client = docker.from_env()
    labels = [
        f"com.docker.compose.project={bed.project}",
        f"com.docker.compose.service={service}",
    ]
    found = client.containers.list(all=True, filters={"label": labels})
    assert len(found) == 1, f"{len(found)} {service} containers in {bed.project}"
    return found[0]


def http_health(url: str, deadline_s: float = HTTP_DEADLINE_S) -> str:
    """'200'/'500'/...; 'timeout' without a status; 'trickle' when the body never ends."""
    session = requests.Session()
    session.trust_env = False  # loopback only: never through a proxy
    deadline = time.monotonic() + deadline_s
    try:
        response = session.get(url, timeout=(2.0, deadline_s), stream=True)
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        return "down"
    try:
        for _ in response.iter_content(1024):
            if time.monotonic() > deadline:
                return "trickle"
    except (requests.ConnectionError, requests.Timeout):
        return "trickle" if time.monotonic() > deadline - 0.5 else "down"
    finally:
        response.close()
    return str(response.status_code)


def in_container(container: Container, command: str) -> bool | None:
    """Exit status 0 of a command run in the container; None if it cannot run there."""
    container.reload()
    if container.attrs["State"]["Status"] != "running":
        return None
    result = testinfra.get_host(f"docker://{container.name}").run(command)
    if "is not running" in result.stderr or "is restarting" in result.stderr:
        return None
    return result.rc == 0


def pg_isready(db: Container) -> str | None:
    if db.attrs["State"]["Status"] != "running":
        return None
    result = db.exec_run([PG_ISREADY, "-h", "127.0.0.1", "-U", "scheduler", "-t", "2"])
    return {0: "accepting connections", 1: "rejecting", 2: "no response", 3: "no attempt"}.get(
        result.exit_code, f"exit {result.exit_code}"
    )


def scheduler_connections(db: Container) -> int | None:
    """Sessions of the app role, counted by the superuser over the Unix socket."""
    if db.attrs["State"]["Status"] != "running":
        return None
    sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'scheduler'"
    result = db.exec_run(
        ["timeout", "4", "psql", "-h", "/run/postgresql", "-U", "postgres", "-Atc", sql],
        environment={"PGPASSWORD": CANARY_PASSWORD, "PGCONNECT_TIMEOUT": "2"},
    )
    return int(result.output) if result.exit_code == 0 else None


def data_fs_used_pct(db: Container) -> float | None:
    """Use of the filesystem that holds PGDATA, as df in the db container counts it."""
    if db.attrs["State"]["Status"] != "running":
        return None
    result = db.exec_run(["df", "-P", "-B1", PGDATA])
    if result.exit_code != 0:
        return None
    fields = result.output.decode().splitlines()[-1].split()  # fs size used avail use% mount
    return round(100.0 * int(fields[2]) / int(fields[1]), 1)


def host_connect(bed: Testbed) -> str:
    try:
        psycopg.connect(bed.dsn, password=CANARY_PASSWORD, connect_timeout=2).close()
    except psycopg.OperationalError as exc:
        text = str(exc)
        for needle, verdict in (
            ("remaining connection slots are reserved", "reserved"),
            ("Connection refused", "refused"),
            ("timeout", "timeout"),
        ):
            if needle in text:
                return verdict
        return f"error: {text.splitlines()[0]}"
    return "ok"


def memory_pct(container: Container) -> float | None:
    if container.attrs["State"]["Status"] != "running":
        return None
    mem = container.stats(stream=False)["memory_stats"]
    if not mem.get("limit"):
        return None
    detail = mem.get("stats", {})
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return round(100.0 * (mem["usage"] - cache) / mem["limit"], 1)


def log_errors(container: Container) -> bool:
    return bool(ERROR_LINE.search(container.logs(tail=500).decode(errors="replace")))


def oom_events(container: Container, since: float) -> int:
    events = docker.from_env().events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"container": container.id, "event": "oom"},
        decode=True,
    )
    return sum(1 for _ in events)


def observe(bed: Testbed, since: float) -> dict[str, Any]:
    """Every observation of HEALTHY, gathered concurrently (a few seconds at most)."""
    backend, db = find(bed, "backend"), find(bed, "db")
    probes: dict[str, Callable[[], Any]] = {
        "backend.memory_pct": lambda: memory_pct(backend),
        "backend.log_errors": lambda: log_errors(backend),
        "backend.oom_events": lambda: oom_events(backend, since),
        "db.log_errors": lambda: log_errors(db),
        "db: data filesystem used %": lambda: data_fs_used_pct(db),
        "GET /health": lambda: http_health(bed.health_url),
        "pg_isready": lambda: pg_isready(db),
        "backend: nc -z db 5432": lambda: in_container(backend, "nc -z -w 2 db 5432"),
        "backend: getent hosts db": lambda: in_container(backend, "getent hosts db"),
        "host: psycopg connect": lambda: host_connect(bed),
    }
    with ThreadPoolExecutor(len(probes)) as pool:
        futures = {key: pool.submit(probe) for key, probe in probes.items()}
        seen = {key: future.result() for key, future in futures.items()}
    # Counted alone, so that the probes' own brief connections are not in it.
    seen["db: scheduler connections"] = scheduler_connections(db)
    backend.reload()
    db.reload()
    seen["backend.status"] = backend.attrs["State"]["Status"]
    seen["backend.restarts"] = backend.attrs["RestartCount"]
    seen["backend.oom_killed"] = backend.attrs["State"]["OOMKilled"]
    seen["db.status"] = db.attrs["State"]["Status"]
    seen["db.health"] = db.attrs["State"].get("Health", {}).get("Status")
    return {key: seen[key] for key in HEALTHY}


def ids(bed: Testbed) -> dict[str, str]:
    return {service: find(bed, service).id for service in ("backend", "db")}


# -------------------------------------------------------------------- tests


def test_every_fault_has_a_row() -> None:
    assert set(FAULT_TABLE) == set(FAULTS)


def test_comes_up_healthy(testbed: Testbed) -> None:
    assert observe(testbed, since=time.time() - 60) == HEALTHY
    for service in ("backend", "db"):
        attrs = find(testbed, service).attrs
        assert attrs["HostConfig"]["PortBindings"], service
        for binding in attrs["HostConfig"]["PortBindings"].values():
            assert binding[0]["HostIp"] == "127.0.0.1", f"{service} published beyond loopback"
    assert find(testbed, "backend").attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024


def test_db_data_is_on_a_small_tmpfs_volume(testbed: Testbed) -> None:
    """db-disk-full fills this filesystem; it must be small, and never the host's disk."""
    db = find(testbed, "db")
    mounts = [m for m in db.attrs["Mounts"] if m["Destination"] == PGDATA]
    assert len(mounts) == 1, db.attrs["Mounts"]
    assert mounts[0]["Type"] == "volume" and mounts[0]["RW"], mounts[0]
    volume = docker.from_env().volumes.get(mounts[0]["Name"])
    assert volume.attrs["Labels"]["com.docker.compose.project"] == testbed.project
    assert volume.attrs["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=128m"}
    result = db.exec_run(["stat", "-f", "-c", "%T %b %S", PGDATA])
    fs_type, blocks, block_size = result.output.decode().split()
    assert (fs_type, int(blocks) * int(block_size)) == ("tmpfs", 128 * 1024 * 1024)


@pytest.mark.parametrize("name", FAULTS)
def test_fault_has_exactly_its_effect_and_reset_undoes_it(
    testbed: Testbed,
    fault: Callable[[str], None],
    record_testbed_timing: Callable[[str, float], None],
    name: str,
) -> None:
    touched, changes = FAULT_TABLE[name]
    before = ids(testbed)
    since = time.time() - 1

    fault(name)
    assert observe(testbed, since) == {**HEALTHY, **changes}

    started = time.monotonic()
    testbed.reset()
    record_testbed_timing(f"reset {name}", time.monotonic() - started)
    assert observe(testbed, since) == HEALTHY
    after = ids(testbed)
    for service in ("backend", "db"):
        if service in touched:
            assert after[service] != before[service], f"{service} was not recreated"
        else:
            assert after[service] == before[service], f"{service} was recreated needlessly"


def test_disk_full_is_in_the_data_volume_and_reset_empties_it(
    testbed: Testbed, fault: Callable[[str], None]
) -> None:
    """From the host: the volume's own mount is full; a recreated db gets an empty one."""
    client = docker.from_env()
    fault("db-disk-full")
    (mount,) = [m for m in find(testbed, "db").attrs["Mounts"] if m["Destination"] == PGDATA]
    host_path = client.volumes.get(mount["Name"]).attrs["Mountpoint"]
    if not Path(host_path).is_mount():
        pytest.skip(f"the engine's volumes are not on this host ({host_path})")
    stat = os.statvfs(host_path)
    assert 1 - stat.f_bavail / stat.f_blocks >= 0.95
    filler = [p.name for p in Path(host_path).iterdir() if p.is_file() and p.stat().st_size > 50e6]
    assert len(filler) == 1, filler  # one big file that is not PostgreSQL's
    testbed.reset()
    assert not (Path(host_path) / filler[0]).exists()
    assert data_fs_used_pct(find(testbed, "db")) == HEALTHY["db: data filesystem used %"]


def test_oom_crashloop_is_the_kernel_killing_every_start(
    testbed: Testbed, fault: Callable[[str], None]
) -> None:
    """Every exit is an OOM kill (137 with an `oom` event), and docker keeps restarting."""
    backend = find(testbed, "backend")
    since = time.time() - 1
    fault("backend-oom-crashloop")
    deadline = time.monotonic() + 30
    while True:  # look at the state in a back-off pause, when no start runs
        backend.reload()
        state = backend.attrs["State"]
        if state["Restarting"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {key: state[key] for key in ("Status", "Restarting", "OOMKilled", "ExitCode")} == {
        "Status": "restarting",
        "Restarting": True,
        "OOMKilled": True,
        "ExitCode": 137,
    }
    events = list(
        docker.from_env().events(
            since=int(since),
            until=int(time.time()) + 1,
            filters={"container": backend.id},
            decode=True,
        )
    )
    actions = [event["Action"] for event in events]
    dies = [
        event["Actor"]["Attributes"].get("exitCode") for event in events if event["Action"] == "die"
    ]
    assert len(dies) >= 2 and set(dies) == {"137"}, actions
    assert actions.count("oom") >= len(dies), actions
    assert actions.count("start") >= len(dies) - 1, actions
    assert backend.attrs["RestartCount"] >= 2
    assert backend.id == find(testbed, "backend").id  # restarted, never recreated


def test_reset_works_from_another_process(testbed: Testbed) -> None:
    """inject in one process, reset in another: reset reads the stack, not a memory."""
    cli = [sys.executable, "-m", "testbed", "--project", testbed.project]
    ports = ["--backend-port", str(testbed.backend_port), "--db-port", str(testbed.db_port)]
    done = subprocess.run(
        [*cli, *ports, "inject", "health-500"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    try:
        assert http_health(testbed.health_url) == "500"
        status = subprocess.run(
            [*cli, *ports, "status"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "health-500" in status.stdout
    finally:
        Testbed(testbed.project, testbed.backend_port, testbed.db_port).reset()
    assert http_health(testbed.health_url) == "200"


def test_two_faults_at_once_reset_together(testbed: Testbed, fault: Callable[[str], None]) -> None:
    before = ids(testbed)
    fault("health-500")
    fault("db-connections-near-limit")
    seen = observe(testbed, time.time())
    assert seen["GET /health"] == "500"
    assert seen["db: scheduler connections"] == Between(22, 24)
    testbed.reset()
    assert observe(testbed, time.time()) == HEALTHY
    after = ids(testbed)
    assert after["backend"] != before["backend"] and after["db"] != before["db"]


def test_stack_file_points_at_this_testbed(testbed: Testbed, tmp_path: Path) -> None:
    written = testbed.write_stack_file(tmp_path / "stack.toml")
    data = tomllib.loads(written.read_text())
    assert data == {
        "stack": {"name": testbed.project, "compose_project": testbed.project},
        "services": {
            "backend": {
                "depends_on": ["db"],
                "health_url": f"http://127.0.0.1:{testbed.backend_port}/health",
                "port": 8000,
            },
            "db": {
                "postgres_dsn": f"postgresql://scheduler@127.0.0.1:{testbed.db_port}/scheduler",
                "port": 5432,
            },
        },
    }
    assert CANARY_PASSWORD not in written.read_text()
    default = Testbed().stack_file_text()
    assert tomllib.loads(default) == tomllib.loads((ROOT / "testbed" / "stack.toml").read_text())


def test_cli_user_mistakes_are_one_line() -> None:
    for args, needle in (
        (["inject", "no-such-fault"], ", ".join(FAULTS)),
        (["frobnicate"], "invalid choice"),
        (["--project", "Bad Name", "status"], "project name"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "testbed", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert needle in done.stderr
        assert "Traceback" not in done.stderr
