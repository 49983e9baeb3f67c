"""What the probes found. Plain data: the checks assert on it, the reporter quotes it.

Every fact carries two reasons, kept apart because they mean opposite things:

- ``blind``: the checker's own way in failed (engine unreachable or denied, a
  probe's own error, a tool missing in the image). The check *could not check*:
  its fixture raises CouldNotCheck, reported as an error, never as the stack's
  fault.
- ``error``: what the probe met is the stack being wrong (no container to run a
  command in, a refused connection); the check fails with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ContainerFacts:
    service: str
    blind: str | None = None
    found: bool = False
    name: str = ""
    id: str = ""
    state: str = "missing"  # docker's State.Status, or "missing"
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    health_status: str | None = None  # None: the image has no HEALTHCHECK
    health_output: str | None = None
    recent_dies: int = 0
    recent_ooms: int = 0
    recent_exit_codes: list[int] = field(default_factory=list)
    cpu_limit: float | None = None  # cores, None when unlimited
    mem_limit: int = 0  # bytes, 0 when unlimited
    compose_cmd: str = ""
    mounts: list[dict[str, str]] = field(default_factory=list)  # Type, Source, Destination
    pgdata: str | None = None  # the PGDATA variable of the container, if set
    # What "what changed since the last healthy run" compares (report/baseline.py).
    image: str = ""  # the image as the container was created from it (Config.Image)
    image_id: str = ""
    created_at: str | None = None
    config_hash: str | None = None  # compose's com.docker.compose.config-hash label
    # The environment, never its values: keyed digests (HMAC-SHA256 under the
    # reports directory's key) per variable name, computed in the probe.
    # Empty with env_key_id "" when there was no key to digest with.
    env_digests: dict[str, str] = field(default_factory=dict)
    env_key_id: str = ""


@dataclass
class StatsFacts:
    service: str
    blind: str | None = None
    error: str | None = None
    mem_usage: int = 0
    mem_limit: int = 0  # the host's memory when the container has no limit
    mem_limited: bool = False
    cpu_percent: float = 0.0  # of one core, as `docker stats` shows it
    online_cpus: int = 1
    cpu_limit: float | None = None  # cores, from the cgroup's quota; None when none or unread
    source: str = ""  # how it was read: "cgroup v1", "cgroup v2", "docker stats (why)"


@dataclass
class LogFacts:
    service: str
    blind: str | None = None
    error: str | None = None
    lines_read: int = 0
    match_count: int = 0
    matches: list[str] = field(default_factory=list)  # the last few matching lines


@dataclass
class PgFacts:
    service: str
    blind: str | None = None
    error: str | None = None  # why the session query could not run
    ping: str = "no attempt"  # pg_isready's outcomes: accepting, rejecting, no response, no attempt
    refused: bool = False  # the server refused us for lack of connection slots
    in_use: int | None = None
    max_connections: int | None = None
    reserved: int | None = None
    server_version: str = ""  # as the server reports it (its server_version parameter)
    user: str = ""
    host: str = ""
    port: str = ""
    dbname: str = ""

    @property
    def usable(self) -> int | None:
        if self.max_connections is None or self.reserved is None:
            return None
        return self.max_connections - self.reserved


@dataclass
class NetFacts:
    source: str
    target: str
    port: int | None
    blind: str | None = None
    error: str | None = None  # could not run anything inside the source container
    resolve: str = "not run"  # "ok", "failed", "unavailable" (no tool), "not run"
    address: str | None = None
    ping: str = "not run"
    port_open: str = "not run"
    detail: dict[str, str] = field(default_factory=dict)
    # Check name -> why that one step could not run (a tool missing in the image).
    blind_for: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpFacts:
    service: str
    url: str
    blind: str | None = None
    error: str | None = None
    status: int | None = None
    elapsed_s: float | None = None
    body: str = ""  # at most the first few KiB, decoded leniently
    json_status: Any = None


@dataclass
class DataFsFacts:
    """The filesystem holding PostgreSQL's data directory, measured inside its container."""

    service: str
    blind: str | None = None
    error: str | None = None
    path: str = ""  # the data directory
    mount: str = ""  # what holds it: "volume NAME", "bind SOURCE", "tmpfs", "container layer"
    size_kb: int = 0
    used_kb: int = 0
    avail_kb: int = 0

    @property
    def used_percent(self) -> float:
        # As df computes Use%: of what the user can have (used + available).
        usable = self.used_kb + self.avail_kb
        return 100.0 * self.used_kb / usable if usable else 0.0


@dataclass
class CommandFacts:
    """A check's own command (``@check(command=[...])``) run inside a service's container."""

    service: str
    check: str
    argv: tuple[str, ...] = ()
    blind: str | None = None
    error: str | None = None
    exit_code: int | None = None
    output: str = ""  # at most a few KiB, decoded leniently


@dataclass
class HostFacts:
    """The Docker host the stack's engine runs on, seen through testinfra."""

    host: str  # "this machine" or the SSH login, for evidence
    blind: str | None = None
    error: str | None = None
    # A part that could not be read blinds only the check that reads it.
    blind_for: dict[str, str] = field(default_factory=dict)
    engine_processes: list[str] = field(default_factory=list)  # dockerd argv, cut
    data_root: str = "/var/lib/docker"
    data_root_from: str = "default"  # dockerd's --data-root, daemon.json, or default
    disk_mount: str = ""
    disk_size_kb: int = 0
    disk_avail_kb: int = 0
    mem_total_kb: int = 0
    mem_available_kb: int = 0

    @property
    def disk_used_percent(self) -> float:
        """Used share of what the filesystem offers users, as df's Use% counts it."""
        used = self.disk_size_kb - self.disk_avail_kb
        return 100.0 * used / self.disk_size_kb if self.disk_size_kb else 0.0

    @property
    def mem_used_percent(self) -> float:
        """Memory not available to new work (MemAvailable: page cache counts as free)."""
        if not self.mem_total_kb:
            return 0.0
        return 100.0 * (self.mem_total_kb - self.mem_available_kb) / self.mem_total_kb


@dataclass
class StackFacts:
    """Everything one run learned about one stack.

    Container-level facts are filed by unit: the service's name, or
    ``service#N`` for replica N of a service that runs several containers
    (``containers["backend"]`` is then its judged-first container, the
    service-level view the hints use). PostgreSQL and HTTP facts are per service.
    """

    containers: dict[str, ContainerFacts] = field(default_factory=dict)
    stats: dict[str, StatsFacts] = field(default_factory=dict)
    logs: dict[str, LogFacts] = field(default_factory=dict)
    pg: dict[str, PgFacts] = field(default_factory=dict)
    net: dict[tuple[str, str], NetFacts] = field(default_factory=dict)
    http: dict[str, HttpFacts] = field(default_factory=dict)
    datafs: dict[str, DataFsFacts] = field(default_factory=dict)
    commands: dict[tuple[str, str], CommandFacts] = field(default_factory=dict)  # (check, service)
    host: HostFacts | None = None
    durations: dict[str, float] = field(default_factory=dict)
    # Services that run several containers: their replica numbers, ascending.
    replicas: dict[str, list[int]] = field(default_factory=dict)
