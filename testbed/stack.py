"""The Residency Scheduler testbed: a real Compose stack with fault switches.

``Testbed.up()`` builds (or reuses) the images and starts backend + PostgreSQL;
``inject(name)`` switches on one fault from ``FAULTS``; ``reset()`` makes every
container clean again: a container that a fault touched (or that looks touched
in any way) is recreated, so it has a fresh id, no restarts and clean logs.

Reset does not rely on memory of what was injected: it inspects the stack, so
``python -m testbed inject X`` in one process and ``reset`` in another works.
Only Docker objects labelled with this testbed's compose project are touched.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
from docker.models.containers import Container

from testbed import images

HERE = Path(__file__).resolve().parent
COMPOSE_FILE = HERE / "docker-compose.yml"
# The same stack with db's port published nowhere (Testbed(publish_db=False)):
# written from COMPOSE_FILE less db's `ports`, so the two cannot drift apart.
NO_DB_PORT_FILE = HERE / ".build" / "docker-compose.no-db-port.yml"
DEFAULT_PROJECT = "residency-scheduler-testbed"
CANARY_PASSWORD = "canary-Pw-7f3e9"
SERVICES = ("db", "backend")  # start order
APP_USER = "scheduler"

FAULTS: tuple[str, ...] = (
    "backend-stopped",
    "backend-crashloop",
    "backend-oom-killed",
    "backend-oom-crashloop",
    "backend-memory-near-limit",
    "backend-log-errors",
    "health-500",
    "health-hang",
    "health-trickle",
    "db-stopped",
    "db-hung",
    "db-connections-near-limit",
    "db-connections-exhausted",
    "db-disk-full",
    "network-partition",
    "dns-broken",
)
# Faults of a scaled backend, apart: the one-container fault matrix of the
# integration tests (tests/integration/test_checks_faults.py) is over FAULTS;
# these have tests/integration/test_replica_faults.py.
REPLICA_FAULTS: tuple[str, ...] = ("backend-replica-stopped", "backend-replica-oom")
ALL_FAULTS = FAULTS + REPLICA_FAULTS

# backend-replica-*: the backend scaled to this many containers. A fixed host
# port cannot be published by several containers, so the scaled backend
# publishes the range backend_port .. backend_port + REPLICAS - 1 (each replica
# one of them): /health on backend_port reaches the one that holds it.
REPLICAS = 3
NUMBER_LABEL = "com.docker.compose.container-number"

# Changes, not failures: each recreates the backend with one difference from
# the compose file's defaults, and the stack stays healthy. What changed since
# the last healthy run (report/baseline.py) names them. They add up (each keeps
# the others' differences), and reset undoes them.
CHANGES: tuple[str, ...] = (
    "backend-image-changed",
    "backend-limit-changed",
    "backend-env-changed",
)
MEM_LIMIT = 256 * 2**20  # the compose file's backend mem_limit
CHANGED_MEM_LIMIT = 192 * 2**20
FLAVOR = "standard"  # the compose file's APP_FLAVOR for the backend
CHANGED_FLAVOR = "experimental"

# PostgreSQL in the testbed: max_connections=30, superuser_reserved_connections=3.
USABLE_CONNECTIONS = 27
# 22 of 27 usable is 81 %, over pg_connections' 80 %; 22 of max_connections' 30
# would be 73 %: the fault fails only a check that subtracts the reserved slots.
NEAR_LIMIT_CONNECTIONS = 22
MEMORY_NEAR_LIMIT = 0.94  # of the backend's mem_limit, as docker stats counts it
FAULT_MARK = "stackcheck-fault"  # in the argv of every process a fault starts
# db's data directory is a size-limited tmpfs volume (docker-compose.yml), so
# db-disk-full fills that filesystem and never the host's disk.
PGDATA = "/var/lib/postgresql/data"
PG_ISREADY = "/usr/lib/postgresql/15/bin/pg_isready"
DISK_FILLER = f"{PGDATA}/{FAULT_MARK}-filler"
DISK_FULL = 0.97  # db-disk-full: used / size of the data filesystem, as df counts it
DISK_DIRTY = 0.80  # a fresh cluster uses about 0.36; this much is a trace of a fault
DATA_FS_MAX = 1 << 30  # never fill a data filesystem larger than this: it is not ours
LOG_PATTERN = re.compile(r"error|exception|fatal|traceback|panic", re.IGNORECASE)

INJECTED_LOG_LINES = (
    "ERROR:    Exception in ASGI application",
    "Traceback (most recent call last):",
    '  File "/app/app.py", line 31, in _database_ok',
    "    with psycopg.connect(DATABASE_URL, connect_timeout=2) as conn:",
    'psycopg.OperationalError: connection failed: connection to server at "db" (172.18.0.2),'
    " port 5432 failed: FATAL:  remaining connection slots are reserved for non-replication"
    " superuser connections",
)

# Runs inside the backend container: grow this process until the cgroup's
# memory use (usage minus inactive file cache, as `docker stats` shows it)
# reaches the target fraction of the limit, then hold it.
_MEMORY_HOG = r"""
import sys, time
from pathlib import Path
fraction = float(sys.argv[1])
v1 = Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")
if v1.exists():
    root, usage_file, limit_file, inactive = v1.parent, v1.name, "memory.limit_in_bytes", "total_inactive_file"
else:
    root, usage_file, limit_file, inactive = Path("/sys/fs/cgroup"), "memory.current", "memory.max", "inactive_file"
limit = int((root / limit_file).read_text())
def used():
    stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines())
    return int((root / usage_file).read_text()) - int(stat.get(inactive, 0))
hog = []
while used() < fraction * limit - (1 << 20):
    hog.append(b"\x01" * (1 << 20))
Path("/run/faults/memory-hog.ready").write_text(str(used()))
while True:
    time.sleep(3600)
"""

# Runs inside the db container: open and hold N idle connections as the app
# role, over TCP like the backend does; retry while others briefly hold a slot.
_CONNECTION_HOLDER = r"""
import os, sys, time
import psycopg
want = int(sys.argv[1])
held = []
deadline = time.monotonic() + 20
while len(held) < want and time.monotonic() < deadline:
    try:
        held.append(psycopg.connect(host="127.0.0.1", port=5432, user=os.environ["APP_USER"],
                                    dbname=os.environ["APP_USER"], connect_timeout=2,
                                    password=os.environ["POSTGRES_PASSWORD"]))
    except psycopg.OperationalError:
        time.sleep(0.1)
# One more client, as an application would be, then gone: refused when the
# slots are exhausted, which puts the server's FATAL in db's log before any
# check runs (else only the checks' own probes would, racing the log read).
try:
    psycopg.connect(host="127.0.0.1", port=5432, user=os.environ["APP_USER"],
                    dbname=os.environ["APP_USER"], connect_timeout=2,
                    password=os.environ["POSTGRES_PASSWORD"]).close()
except psycopg.OperationalError:
    pass
with open("/tmp/connection-holder.ready", "w") as ready:
    ready.write(str(len(held)))
while True:
    time.sleep(3600)
"""

T = TypeVar("T")
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Only loopback is ever asked, so proxies from the environment must not apply.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TestbedError(Exception):
    """A testbed operation failed; the message is one line and says what to look at."""

    __test__ = False  # not a pytest test class, despite the name


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call probe until it returns something other than None/False; bounded.

    A probe may raise; its last exception is quoted in the timeout message.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            result = probe()
        except Exception as exc:  # the probe's failure is the thing being waited out
            result = None
            last = f"{type(exc).__name__}: {exc}".splitlines()[0]
        else:
            if result is not None and result is not False:
                return result
        if time.monotonic() >= deadline:
            raise TestbedError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")
        time.sleep(interval)


class Testbed:
    """One compose project of the testbed stack, on loopback ports."""

    __test__ = False

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        backend_port: int = 18000,
        db_port: int = 15432,
        password: str = CANARY_PASSWORD,
        timeout: float = 90.0,
        publish_db: bool = True,
        health_interval: str = "2s",
    ) -> None:
        if not PROJECT_NAME.fullmatch(project):
            # docker-compose would silently rewrite it, and labels would not match.
            raise TestbedError(f"project name {project!r} must match {PROJECT_NAME.pattern}")
        self.project = project
        self.backend_port = backend_port
        self.db_port = db_port
        self.password = password
        self.timeout = timeout
        # False: db's port is published nowhere; the checks reach PostgreSQL
        # (and, in its stack file, the health URL) from inside the containers.
        self.publish_db = publish_db
        self.health_interval = health_interval  # of db's healthcheck (compose duration)
        self._client: docker.DockerClient | None = None
        self._images: dict[str, str] | None = None

    # ---------------------------------------------------------------- basics

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}/health"

    @property
    def dsn(self) -> str:
        """libpq URL of the app database from the host, without the password."""
        return f"postgresql://{APP_USER}@127.0.0.1:{self.db_port}/{APP_USER}"

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = self._connect()
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise TestbedError(f"no Docker engine: {exc} (run testbed/engine.sh)") from None
        return self._client

    # The engine's host. Overridden by testbed.remote.RemoteTestbed, whose engine
    # runs in a container: there these go through `docker exec` into that host.

    def _connect(self) -> docker.DockerClient:
        # docker-py's own local adapter loses an exec's output that arrives with
        # the answer's head (1 in ~800 under load: an empty df broke a fleet's
        # start); the suite's reads the head whole (stackcheck.probes.streams).
        from stackcheck.probes.streams import keep_exec_output

        client: docker.DockerClient = keep_exec_output(docker.from_env(timeout=30))
        return client

    def _engine_env(self) -> dict[str, str]:
        """Variables that point docker-compose at the engine (none: the default one)."""
        return {}

    def _host_has_pid(self, pid: int) -> bool:
        return Path(f"/proc/{pid}").exists()

    def _host_process_state(self, pid: int) -> str:
        return _process_state(pid)

    def _host_signal(self, pid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def _nsenter_ip(self, pid: int, *args: str) -> str:
        done = subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise TestbedError(f"nsenter ip {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def images(self) -> dict[str, str]:
        """Build or reuse the images; compose's DB_IMAGE / BACKEND_IMAGE variables."""
        if self._images is None:
            try:
                self._images = images.build_all()
            except (subprocess.CalledProcessError, OSError) as exc:
                raise TestbedError(f"building the testbed images failed: {exc}") from None
        return self._images

    def compose(
        self,
        *args: str,
        timeout: float = 180.0,
        scaled: bool = False,
        variables: dict[str, str] | None = None,
    ) -> str:
        """Run docker-compose for this project; return stdout, raise one line on failure.

        ``scaled``: the backend publishes a port range, one port per replica.
        ``variables`` override the compose file's variables (the changes use it).
        """
        base = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
        backend_port = str(self.backend_port)
        if scaled:
            backend_port += f"-{self.backend_port + REPLICAS - 1}"
        env = {
            **os.environ,
            **self._engine_env(),
            **self.images(),
            "TESTBED_DB_PASSWORD": self.password,
            "TESTBED_DB_PORT": str(self.db_port),
            "TESTBED_BACKEND_PORT": backend_port,
            "TESTBED_DB_HEALTH_INTERVAL": self.health_interval,
            **(variables or {}),
        }
        compose_file = COMPOSE_FILE if self.publish_db else unpublished_compose_file()
        cmd = [*base, "-p", self.project, "-f", str(compose_file), *args]
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise TestbedError(
                f"docker-compose {' '.join(args)} took over {timeout:.0f}s"
            ) from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit {done.returncode}"
            raise TestbedError(f"docker-compose {' '.join(args)} failed: {reason}")
        return done.stdout

    def _find(self, service: str) -> Container | None:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        found = [c for c in found if c.labels.get("com.docker.compose.oneoff") != "True"]
        if not found:
            return None
        # During a recreate two exist for a moment: prefer the running, newest one.
        found.sort(key=lambda c: (c.status == "running", c.attrs["Created"]), reverse=True)
        return found[0]

    def replicas(self, service: str = "backend") -> dict[int, Container]:
        """The service's containers by compose number (one-off containers left out)."""
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        numbered: dict[int, Container] = {}
        for container in found:
            number = container.labels.get(NUMBER_LABEL, "")
            if container.labels.get("com.docker.compose.oneoff") != "True" and number.isdigit():
                numbered[int(number)] = container
        return dict(sorted(numbered.items()))

    def container(self, service: str) -> Container:
        """The docker SDK container of a service (found by its compose labels)."""
        if service not in SERVICES:
            raise TestbedError(f"unknown service '{service}' (services: {', '.join(SERVICES)})")
        found = self._find(service)
        if found is None:
            raise TestbedError(f"no {service} container in project {self.project}: run up first")
        return found

    def host_pid(self, service: str) -> int:
        """Host PID of the service's main process (0 if it is not running)."""
        return int(self.container(service).attrs["State"]["Pid"])

    def network(self) -> str:
        """Name of the project's compose network (the db container's only one)."""
        networks = list(self.container("db").attrs["NetworkSettings"]["Networks"])
        if len(networks) != 1:
            raise TestbedError(f"db should be on exactly one network, is on {networks}")
        return str(networks[0])

    def db_ip(self) -> str:
        return str(
            self.container("db").attrs["NetworkSettings"]["Networks"][self.network()]["IPAddress"]
        )

    def exec(self, service: str, cmd: list[str], detach: bool = False, user: str = "") -> str:
        """Run a command in the service's container; raise one line on non-zero exit."""
        result = self.container(service).exec_run(cmd, detach=detach, user=user)
        if detach:
            return ""
        output = result.output.decode(errors="replace") if result.output else ""
        if result.exit_code != 0:
            last = output.strip().splitlines()[-1:] or [f"exit {result.exit_code}"]
            raise TestbedError(f"{service}: {' '.join(cmd)[:60]} failed: {last[0]}")
        return output

    def health(self, timeout: float = 2.0) -> str:
        """What GET /health gives within timeout seconds in total.

        "200", "500", ... for a complete response; "timeout" when no response
        comes; "trickle" when the status arrives but the body never completes;
        "down" when the connection is refused or reset.
        """
        deadline = time.monotonic() + timeout
        try:
            response = _OPENER.open(self.health_url, timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            return str(exc.code)
        except urllib.error.URLError as exc:
            return "timeout" if isinstance(exc.reason, TimeoutError) else "down"
        except TimeoutError:
            return "timeout"
        except OSError:
            return "down"
        with response:
            try:
                while time.monotonic() < deadline:
                    if not response.read1(65536):
                        return str(response.status)
            except TimeoutError:
                pass
            except OSError:
                return "down"
        return "trickle"

    def data_disk_usage(self) -> tuple[int, int]:
        """(used, size) in bytes of the filesystem that holds db's data directory, by df."""
        lines = self.exec("db", ["df", "-P", "-B1", PGDATA]).strip().splitlines()
        fields = lines[-1].split()  # Filesystem 1-blocks Used Available Capacity Mounted-on
        try:
            return int(fields[2]), int(fields[1])
        except (IndexError, ValueError):
            raise TestbedError(f"db: cannot read df of {PGDATA}: {lines[-1:]}") from None

    def memory_percent(self, service: str = "backend") -> float:
        """Memory use in % of the limit as `docker stats` shows it (usage minus cache)."""
        stats = self.container(service).stats(stream=False)
        mem = stats["memory_stats"]
        detail = mem.get("stats", {})
        cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
        return 100.0 * float(mem["usage"] - cache) / float(mem["limit"])

    # ------------------------------------------------------------- lifecycle

    def up(self) -> None:
        """Start the stack (reusing what runs), make it clean, wait until healthy."""
        self.images()
        self._unscale()  # a scaled backend (replica faults) holds a port range
        try:
            self.compose("up", "-d", "--remove-orphans")
        except TestbedError as first:
            # On a loaded machine db's health check can time out while initdb
            # runs; compose v1 then gives up on backend (depends_on: healthy).
            # Docker keeps checking, so wait for db once and ask again.
            try:
                wait_for(self._db_healthy, self.timeout, "db to be healthy")
            except TestbedError:
                raise first from None
            self.compose("up", "-d", "--remove-orphans")
        self.reset()

    def down(self) -> None:
        """Remove every container, network and volume of this project."""
        self._thaw_db()
        self.compose("down", "-v", "-t", "1", "--remove-orphans")

    def reset(self) -> None:
        """Undo every fault: recreate each container that is not clean, wait until healthy."""
        self._unscale()
        dirty = [service for service, reasons in self.dirt().items() if reasons]
        self._thaw_db()  # a frozen postmaster would sit out the whole stop timeout
        for service in dirty:  # SERVICES order: db before backend
            self.compose("up", "-d", "--no-deps", "--force-recreate", "-t", "1", service)
        self.wait_healthy()

    def _unscale(self) -> None:
        """Back to one backend on its fixed port, if a replica fault scaled it."""
        if len(self.replicas("backend")) > 1:
            # The others are removed; the first is recreated (its published port differs).
            self.compose(
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                "--scale",
                "backend=1",
                "-t",
                "1",
                "backend",
            )

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait (bounded) until db reports healthy and backend /health answers 200."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout

        def backend_healthy() -> bool:
            answer = self.health()
            if answer != "200":
                raise TestbedError(f"GET {self.health_url} gave {answer}")
            return True

        wait_for(self._db_healthy, timeout, "db to be healthy")
        wait_for(backend_healthy, max(1.0, deadline - time.monotonic()), "backend /health 200")

    def _db_healthy(self) -> bool:
        state = self.container("db").attrs["State"]
        status = state.get("Health", {}).get("Status", state["Status"])
        if status != "healthy":
            raise TestbedError(f"db is {status}")
        return True

    def dirt(self) -> dict[str, list[str]]:
        """Per service, every sign that a fault touched its container (empty: clean)."""
        return {service: self._dirt(service) for service in SERVICES}

    def _dirt(self, service: str) -> list[str]:
        found = self._find(service)
        if found is None:
            return ["missing"]
        state = found.attrs["State"]
        reasons = []
        count = len(self.replicas(service))
        if count > 1:
            reasons.append(f"scaled to {count} containers")
        wanted = self.images()[f"{service.upper()}_IMAGE"]
        try:
            if wanted not in found.image.tags:
                reasons.append("outdated image")
        except docker.errors.ImageNotFound:
            reasons.append("image removed")
        if state["Status"] != "running" or state["Restarting"]:
            reasons.append(f"{state['Status']}")
        if found.attrs["RestartCount"]:
            reasons.append(f"restarted {found.attrs['RestartCount']} times")
        if service == "backend":
            if found.attrs["HostConfig"].get("Memory") != MEM_LIMIT:
                reasons.append("memory limit changed")
            if _env_value(found, "APP_FLAVOR") != FLAVOR:
                reasons.append("environment changed")
        if state.get("OOMKilled"):
            reasons.append("OOM-killed")
        if state.get("Health", {}).get("Status") == "unhealthy":
            reasons.append("unhealthy")
        logs = found.logs(tail=500).decode(errors="replace")
        if LOG_PATTERN.search(logs):
            reasons.append("errors in its log")
        if reasons or state["Status"] != "running":
            return reasons
        try:
            reasons += self._dirt_inside(service, int(state["Pid"]))
        except (TestbedError, docker.errors.APIError) as exc:  # e.g. it exited meanwhile
            reasons.append(f"cannot look inside: {exc}")
        if service == "db":
            if self._host_process_state(int(state["Pid"])) == "T":
                reasons.append("frozen (SIGSTOP)")
            networks = found.attrs["NetworkSettings"]["Networks"]
            if not any("db" in (net.get("Aliases") or []) for net in networks.values()):
                reasons.append("no 'db' alias on the network")
        return reasons

    def _dirt_inside(self, service: str, pid: int) -> list[str]:
        """Traces of faults inside a running container: processes, files, routes."""
        reasons = []
        if FAULT_MARK in self.exec(service, ["ps", "-eo", "args="]):
            reasons.append("fault process running")
        if service == "backend":
            markers = self.exec(
                service,
                [
                    "sh",
                    "-c",
                    "ls -A /run/faults 2>/dev/null; [ ! -e /app/crashloop ] || echo crashloop;"
                    " [ ! -e /app/oomloop ] || echo oomloop",
                ],
            )
            if markers.strip():
                reasons.append(f"fault files: {' '.join(markers.split())}")
            local = self._host_has_pid(pid)  # the engine runs on the host we reach
            if local and self._nsenter_ip(pid, "route", "show", "type", "blackhole").strip():
                reasons.append("blackhole route")
        if service == "db":
            used, size = self.data_disk_usage()
            if used >= DISK_DIRTY * size:
                reasons.append(f"data filesystem {100.0 * used / size:.0f}% used")
            if self.container("db").exec_run(["test", "-e", DISK_FILLER]).exit_code == 0:
                reasons.append("disk filler file")
        return reasons

    # ---------------------------------------------------------------- faults

    def inject(self, name: str) -> None:
        """Switch on one fault (or change) and wait (bounded) until it has taken effect."""
        if name not in ALL_FAULTS + CHANGES:
            valid = ", ".join(ALL_FAULTS + CHANGES)
            raise TestbedError(f"unknown fault '{name}' (valid: {valid})")
        getattr(self, "_fault_" + name.replace("-", "_"))()

    def change(self, *names: str) -> None:
        """Switch on several changes (CHANGES) with one recreation of the backend."""
        unknown = [name for name in names if name not in CHANGES]
        if unknown or not names:
            raise TestbedError(f"unknown change {unknown} (valid: {', '.join(CHANGES)})")
        variables: dict[str, str] = {}
        for name in names:
            variables.update(self._change_variables(name))
        self._recreate_backend(**variables)

    def _change_variables(self, name: str) -> dict[str, str]:
        """The compose variables that make one change."""
        if name == "backend-image-changed":
            try:
                return {"BACKEND_IMAGE": images.build_variant("backend")}
            except (subprocess.CalledProcessError, OSError) as exc:
                raise TestbedError(f"building the backend's variant image failed: {exc}") from None
        if name == "backend-limit-changed":
            return {"TESTBED_BACKEND_MEM_LIMIT": str(CHANGED_MEM_LIMIT)}
        return {"TESTBED_BACKEND_FLAVOR": CHANGED_FLAVOR}

    def _recreate_backend(self, **change: str) -> None:
        """Recreate the backend with ``change`` on top of the changes it already has."""
        found = self.container("backend")
        variables = {
            "BACKEND_IMAGE": str(found.attrs["Config"]["Image"]),
            "TESTBED_BACKEND_MEM_LIMIT": str(found.attrs["HostConfig"].get("Memory") or MEM_LIMIT),
            "TESTBED_BACKEND_FLAVOR": _env_value(found, "APP_FLAVOR") or FLAVOR,
            **change,
        }
        self.compose(
            "up", "-d", "--no-deps", "--force-recreate", "-t", "1", "backend", variables=variables
        )
        self.wait_healthy()

    def _fault_backend_image_changed(self) -> None:
        self.change("backend-image-changed")

    def _fault_backend_limit_changed(self) -> None:
        self.change("backend-limit-changed")

    def _fault_backend_env_changed(self) -> None:
        self.change("backend-env-changed")

    def _touch_fault_file(self, name: str) -> None:
        self.exec("backend", ["sh", "-c", f"mkdir -p /run/faults && touch /run/faults/{name}"])

    def _fault_backend_stopped(self) -> None:
        self.container("backend").stop(timeout=3)
        wait_for(lambda: self.container("backend").status == "exited", 15, "backend to stop")

    def _fault_backend_crashloop(self) -> None:
        self.exec("backend", ["touch", "/app/crashloop"])
        # uvicorn handles SIGTERM, so PID 1 exits; `docker kill` would instead
        # tell the restart policy to stand down.
        self.exec("backend", ["kill", "-TERM", "1"])
        wait_for(
            lambda: self.container("backend").attrs["RestartCount"] >= 2,
            30,
            "backend to restart twice",
        )

    def _fault_backend_oom_killed(self) -> None:
        before = self.container("backend").attrs["RestartCount"]
        self._touch_fault_file("oom")
        wait_for(
            lambda: self.container("backend").attrs["RestartCount"] > before,
            30,
            "the kernel to OOM-kill the backend and docker to restart it",
        )
        # Back in service after the restart: the trace is in docker's records only.
        wait_for(lambda: self.health() == "200", 30, "backend /health 200 after the OOM kill")

    def _fault_backend_oom_crashloop(self) -> None:
        # The marker is in the writable layer, so it outlives every restart: the
        # running app's watcher grows at once (the first kill), and every start
        # after it grows at import. A kill by the kernel, unlike `docker kill`,
        # leaves the restart policy on, so docker keeps restarting it.
        self.exec("backend", ["touch", "/app/oomloop"])

        def looping() -> bool:
            attrs = self.container("backend").attrs
            return bool(attrs["RestartCount"] >= 2 and attrs["State"]["OOMKilled"])

        # Docker's back-off doubles from 100 ms and each start lives about half
        # a second before it is killed: two restarts take a second or two.
        wait_for(looping, 60, "the backend to be OOM-killed and restarted twice")

    def _fault_backend_memory_near_limit(self) -> None:
        fraction = str(MEMORY_NEAR_LIMIT)
        self.exec("backend", ["sh", "-c", "mkdir -p /run/faults"])
        self.exec("backend", ["python3", "-c", _MEMORY_HOG, fraction, FAULT_MARK], detach=True)
        wait_for(
            lambda: (
                self.container("backend")
                .exec_run(["cat", "/run/faults/memory-hog.ready"])
                .exit_code
                == 0
            ),
            30,
            "the memory hog to reach its size",
        )
        percent = self.memory_percent("backend")
        if not 90.0 <= percent <= 97.0:
            raise TestbedError(f"backend memory is at {percent:.1f}% of its limit, not about 94%")

    def _fault_backend_log_errors(self) -> None:
        lines = "\n".join(INJECTED_LOG_LINES)
        self.exec("backend", ["sh", "-c", 'printf "%s\\n" "$0" > /proc/1/fd/2', lines])
        wait_for(
            lambda: b"Traceback" in self.container("backend").logs(tail=50),
            10,
            "the error lines in the backend log",
        )

    def _health_fault(self, name: str, expect: str) -> None:
        self._touch_fault_file(name)
        answer = self.health(timeout=1.5)
        if answer != expect:
            raise TestbedError(f"{name} injected but GET /health gave {answer}, not {expect}")

    def _fault_health_500(self) -> None:
        self._health_fault("health-500", "500")

    def _fault_health_hang(self) -> None:
        self._health_fault("health-hang", "timeout")

    def _fault_health_trickle(self) -> None:
        self._health_fault("health-trickle", "trickle")

    def _fault_db_stopped(self) -> None:
        self.container("db").stop(timeout=3)
        wait_for(lambda: self.container("db").status == "exited", 15, "db to stop")

    def _fault_db_hung(self) -> None:
        # From inside the container the kernel would ignore a signal to PID 1.
        pid = self._local_pid("db")
        self._host_signal(pid, signal.SIGSTOP)
        wait_for(lambda: self._host_process_state(pid) == "T", 5, "the postmaster to stop")

    def _hold_connections(self, count: int) -> None:
        self.exec("db", ["python3", "-c", _CONNECTION_HOLDER, str(count), FAULT_MARK], detach=True)
        held = wait_for(
            lambda: self.exec("db", ["cat", "/tmp/connection-holder.ready"]),
            30,
            f"{count} held connections",
        )
        if int(held) != count:
            raise TestbedError(f"could hold only {held.strip()} of {count} connections")

    def _fault_db_connections_near_limit(self) -> None:
        self._hold_connections(NEAR_LIMIT_CONNECTIONS)

    def _fault_db_connections_exhausted(self) -> None:
        self._hold_connections(USABLE_CONNECTIONS)

    def _fault_db_disk_full(self) -> None:
        mounts = self.container("db").attrs["Mounts"]
        if not any(m.get("Destination") == PGDATA for m in mounts):
            raise TestbedError(f"db has no volume at {PGDATA}: run up to recreate it")
        used, size = self.data_disk_usage()
        if size > DATA_FS_MAX:  # a guard: filling it would fill a real disk
            raise TestbedError(f"db's data filesystem has {size} bytes, not a small tmpfs")
        # fallocate reserves the blocks in one call (tmpfs supports it), so the
        # fill is instant. The files PostgreSQL already has keep working, and
        # a few MB stay free, so it keeps running and accepting connections.
        missing = int(DISK_FULL * size) - used
        if missing > 0:
            self.exec("db", ["fallocate", "-l", str(missing), DISK_FILLER])
        used, size = self.data_disk_usage()
        if used < 0.95 * size:
            raise TestbedError(f"db's data filesystem is only {100.0 * used / size:.1f}% used")
        wait_for(
            lambda: self.container("db").exec_run([PG_ISREADY, "-h", "127.0.0.1"]).exit_code == 0,
            10,
            "PostgreSQL to accept connections on the full disk",
        )

    def _fault_network_partition(self) -> None:
        pid = self._local_pid("backend")
        self._nsenter_ip(pid, "route", "add", "blackhole", f"{self.db_ip()}/32")

    def _fault_dns_broken(self) -> None:
        network = self.client.networks.get(self.network())
        db = self.container("db")
        ip = self.db_ip()
        network.disconnect(db)
        # Without aliases only the container name resolves, not "db". Keep the
        # address so that connections by IP (and the published port) still work.
        try:
            network.connect(db, ipv4_address=ip)
        except docker.errors.APIError:
            network.connect(db)
        wait_for(
            lambda: self.container("backend").exec_run(["getent", "hosts", "db"]).exit_code != 0,
            10,
            "'db' to stop resolving in backend",
        )

    def _scale_backend(self) -> dict[int, Container]:
        """Scale the backend to REPLICAS containers on a port range; wait until all serve."""
        self.compose(
            "up",
            "-d",
            "--no-deps",
            "--scale",
            f"backend={REPLICAS}",
            "-t",
            "1",
            "backend",
            scaled=True,
        )

        def all_running() -> dict[int, Container] | None:
            found = self.replicas("backend")
            return (
                found
                if len(found) == REPLICAS and all(c.status == "running" for c in found.values())
                else None
            )

        found = wait_for(all_running, self.timeout, f"{REPLICAS} backend replicas running")

        def all_serve() -> bool:
            return all(self._replica_health(c) == "200" for c in found.values())

        # Three app starts at once: allow them twice a single start's time.
        wait_for(
            all_serve, 2 * self.timeout, f"/health 200 from each of {REPLICAS} backend replicas"
        )
        return found

    def _replica_health(self, container: Container) -> str:
        """GET /health of one replica, on the host port it publishes."""
        port = self._host_port(container)
        if port is None:
            return "down"
        other = copy.copy(self)  # the same testbed (local or remote), asked on that port
        other.backend_port = port
        return other.health(timeout=5.0)

    def _host_port(self, container: Container) -> int | None:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("8000/tcp") or []
        ports = [int(b["HostPort"]) for b in bindings if str(b.get("HostPort", "")).isdigit()]
        return ports[0] if ports else None

    def replica_victim(self) -> tuple[int, Container]:
        """The highest-numbered replica that does not hold backend_port (so /health still
        answers through it from another replica)."""
        found = self.replicas("backend")
        for number in sorted(found, reverse=True):
            if self._host_port(found[number]) != self.backend_port:
                return number, found[number]
        raise TestbedError("every backend replica holds the health port: not scaled?")

    def _fault_backend_replica_stopped(self) -> None:
        self._scale_backend()
        number, victim = self.replica_victim()
        victim.stop(timeout=3)

        def stopped() -> bool:
            victim.reload()
            return bool(victim.status == "exited")

        wait_for(stopped, 15, f"backend replica {number} to stop")
        # The others still serve: /health through the replica that holds the port.
        wait_for(
            lambda: self.health() == "200", self.timeout, "/health 200 with one replica stopped"
        )

    def _fault_backend_replica_oom(self) -> None:
        self._scale_backend()
        number, victim = self.replica_victim()
        before = victim.attrs["RestartCount"]
        result = victim.exec_run(["sh", "-c", "mkdir -p /run/faults && touch /run/faults/oom"])
        if result.exit_code != 0:
            raise TestbedError(f"backend replica {number}: cannot write the oom fault file")

        def restarted() -> bool:
            victim.reload()
            return bool(victim.attrs["RestartCount"] > before and victim.status == "running")

        wait_for(
            restarted,
            30,
            f"the kernel to OOM-kill backend replica {number} and docker to restart it",
        )
        wait_for(
            lambda: self.health() == "200", self.timeout, "backend /health 200 after the OOM kill"
        )

    # --------------------------------------------------------------- helpers

    def _local_pid(self, service: str) -> int:
        pid = self.host_pid(service)
        if not pid:
            raise TestbedError(f"{service} is not running")
        if not self._host_has_pid(pid):
            raise TestbedError(f"{service}'s PID {pid} is not on this host: the engine is remote")
        return pid

    def _thaw_db(self) -> None:
        """SIGCONT a frozen postmaster, so that it can be stopped quickly."""
        found = self._find("db")
        pid = int(found.attrs["State"]["Pid"]) if found else 0
        if pid and self._host_process_state(pid) == "T":
            self._host_signal(pid, signal.SIGCONT)

    # ------------------------------------------------------------ stack file

    def stack_file_text(self) -> str:
        if not self.publish_db:
            return self.inside_stack_file_text()
        return f"""\
# Points stackcheck at the testbed (see testbed/stack.py). Password: PGPASSWORD.
[stack]
name = "{self.project}"
compose_project = "{self.project}"

[services.backend]
depends_on = ["db"]
health_url = "{self.health_url}"
port = 8000

[services.db]
postgres_dsn = "{self.dsn}"
port = 5432
"""

    def inside_stack_file_text(self) -> str:
        """The checks from inside the stack: no published port and no password needed."""
        return f"""\
# Points stackcheck at the testbed (see testbed/stack.py) from inside its
# containers: PostgreSQL through pg_isready/psql in db (its own password), the
# health URL through curl in backend. No port needs publishing.
[stack]
name = "{self.project}"
compose_project = "{self.project}"

[services.backend]
depends_on = ["db"]
health_url = "http://127.0.0.1:8000/health"
health_via = "exec"
port = 8000

[services.db]
postgres_via = "exec"
postgres_user = "{APP_USER}"
postgres_db = "{APP_USER}"
port = 5432
"""

    def write_stack_file(self, path: str | os.PathLike[str]) -> Path:
        """Write a stack file that points the checks at this testbed."""
        target = Path(path)
        target.write_text(self.stack_file_text(), encoding="utf-8")
        return target

    def status(self) -> dict[str, Any]:
        """A summary for humans: per service status, restarts and dirt; /health."""
        summary: dict[str, Any] = {}
        for service in SERVICES:
            found = self._find(service)
            if found is None:
                summary[service] = {"status": "missing"}
                continue
            state = found.attrs["State"]
            summary[service] = {
                "id": found.short_id,
                "status": state.get("Health", {}).get("Status", state["Status"])
                if state["Status"] == "running"
                else state["Status"],
                "restarts": found.attrs["RestartCount"],
                "dirt": self._dirt(service),
            }
        summary["health"] = self.health()
        return summary


def unpublished_compose_file() -> Path:
    """COMPOSE_FILE without db's published port (written atomically, each time the same)."""
    import yaml  # pyyaml: a core dependency (stackcheck init reads compose files with it)

    model = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    if "ports" not in model["services"]["db"]:
        raise TestbedError(f"{COMPOSE_FILE}: db publishes no port; nothing to leave out")
    del model["services"]["db"]["ports"]
    NO_DB_PORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    scratch = NO_DB_PORT_FILE.with_name(f"{NO_DB_PORT_FILE.name}.{os.getpid()}.tmp")
    scratch.write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    os.replace(scratch, NO_DB_PORT_FILE)  # concurrent writers: each renames a whole file
    return NO_DB_PORT_FILE


def _env_value(container: Container, name: str) -> str | None:
    for item in container.attrs["Config"].get("Env") or []:
        key, _, value = str(item).partition("=")
        if key == name:
            return value
    return None


def _process_state(pid: int) -> str:
    """One-letter state of a host process ('' if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    match = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
    return match.group(1) if match else ""
