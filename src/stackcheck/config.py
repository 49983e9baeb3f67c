"""The stack file: which compose project to inspect, and how.

Every key is declared once in ``SCHEMA``; anything else in the file is an error
that names it, because a typo must never silently turn a check off.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict


class StackFileError(Exception):
    """A stack file that cannot be used; the message is one line naming file and key."""


@dataclass(frozen=True)
class Thresholds:
    memory_percent: float = 90.0
    cpu_percent: float = 90.0
    pg_connections_percent: float = 80.0
    data_disk_percent: float = 90.0
    stable_window_s: float = 300.0


@dataclass(frozen=True)
class Timeouts:
    probe_s: float = 5.0
    connect_s: float = 3.0


@dataclass(frozen=True)
class LogRules:
    tail: int = 200
    since_s: float = 600.0
    patterns: tuple[str, ...] = ("error", "exception", "fatal", "traceback", "panic")
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    name: str
    depends_on: tuple[str, ...] = ()
    health_url: str | None = None
    port: int | None = None
    postgres_dsn: str | None = None
    # Checks that cannot run on this service by design (e.g. no ping in a slim
    # image): skipped with this reason, instead of "could not check" every run.
    gaps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stack:
    path: Path
    name: str
    compose_project: str
    services: Mapping[str, Service]
    docker_host: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    timeouts: Timeouts = field(default_factory=Timeouts)
    logs: LogRules = field(default_factory=LogRules)

    def edges(self) -> list[tuple[str, str]]:
        """Every (from, to) dependency, in file order."""
        return [(s.name, dep) for s in self.services.values() for dep in s.depends_on]

    def secrets(self) -> list[str]:
        """Passwords this stack can reveal, longest first, for redaction."""
        found = set()
        env_password = os.environ.get("PGPASSWORD")
        if env_password:
            found.add(env_password)
        for service in self.services.values():
            if service.postgres_dsn:
                password = conninfo_to_dict(service.postgres_dsn).get("password")
                if password:
                    found.add(str(password))
        return sorted(found, key=len, reverse=True)


# key -> (type, description) for each table; "services.*" applies to every service.
SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], str]]] = {
    "stack": {
        "name": (str, "display name"),
        "compose_project": (str, "value of the com.docker.compose.project label"),
        "docker_host": (str, "Docker engine address; default DOCKER_HOST or the local socket"),
    },
    "thresholds": {
        "memory_percent": ((int, float), "memory use that fails memory_headroom, % of limit"),
        "cpu_percent": ((int, float), "CPU use that fails cpu_headroom, % of limit"),
        "pg_connections_percent": ((int, float), "connections that fail pg_connections, %"),
        "data_disk_percent": (
            (int, float),
            "use of the database's data filesystem that fails pg_data_disk, %",
        ),
        "stable_window_s": ((int, float), "restarts or OOM kills this recent fail stability"),
    },
    "timeouts": {
        "probe_s": ((int, float), "total deadline of every probe"),
        "connect_s": ((int, float), "TCP/PostgreSQL connect timeout, within probe_s"),
    },
    "logs": {
        "tail": (int, "log lines read per container"),
        "since_s": ((int, float), "only lines this recent are read"),
        "patterns": (list, "case-insensitive words or regexes that mark a bad line"),
        "ignore": (list, "regexes of known-harmless lines"),
    },
    "services.*": {
        "depends_on": (list, "services this one needs"),
        "health_url": (str, "HTTP URL that must answer 200"),
        "port": (int, "port the others reach it on inside the compose network"),
        "postgres_dsn": (str, "libpq URL or key=value string; enables the PostgreSQL checks"),
        "gaps": (list, "checks this service cannot support by design (skipped, not blind)"),
    },
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return {"str": "string", "int": "integer", "list": "list"}.get(kind.__name__, kind.__name__)


def _check_table(path: Path, where: str, table: Any, schema_key: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise StackFileError(f"{path}: [{where}] must be a table")
    schema = SCHEMA[schema_key]
    for key, value in table.items():
        if key not in schema:
            known = ", ".join(schema)
            raise StackFileError(f"{path}: unknown key '{where}.{key}' (known: {known})")
        kind, _ = schema[key]
        # bool is an int subclass in Python; a boolean is never a valid value here.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise StackFileError(f"{path}: '{where}.{key}' must be a {_type_name(kind)}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise StackFileError(f"{path}: '{where}.{key}' must be a list of strings")
        if isinstance(value, int | float) and value <= 0:
            raise StackFileError(f"{path}: '{where}.{key}' must be greater than 0")
        if key.endswith("_percent") and isinstance(value, int | float) and value > 100:
            raise StackFileError(f"{path}: '{where}.{key}' must be at most 100")
    return table


# Compose's own rule for service names; anything else cannot be a service label,
# and would reach commands and reports.
SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")


def _service(path: Path, name: str, table: Any) -> Service:
    where = f"services.{name}"
    if not SERVICE_NAME.fullmatch(name):
        raise StackFileError(
            f"{path}: service name {name[:64]!r} is not a compose service name "
            "(letters, digits, '_', '.', '-'; at most 63 characters)"
        )
    data = _check_table(path, where, table, "services.*")
    url = data.get("health_url")
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StackFileError(
                f"{path}: '{where}.health_url' must be an http(s) URL, got {url!r}"
            )
    port = data.get("port")
    if port is not None and not 0 < port < 65536:
        raise StackFileError(f"{path}: '{where}.port' must be between 1 and 65535")
    dsn = data.get("postgres_dsn")
    if dsn is not None:
        try:
            conninfo_to_dict(dsn)
        except Exception:
            # The library's message may quote the DSN, password included.
            raise StackFileError(
                f"{path}: '{where}.postgres_dsn' is not a valid libpq DSN"
            ) from None
    return Service(
        name=name,
        depends_on=tuple(data.get("depends_on", ())),
        health_url=url,
        port=port,
        postgres_dsn=dsn,
        gaps=tuple(data.get("gaps", ())),
    )


def load_stack(path: Path) -> Stack:
    """Read and validate a stack file; raise StackFileError with a one-line reason."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StackFileError(f"{path}: stack file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackFileError(f"{path}: cannot read stack file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StackFileError(f"{path}: invalid TOML: {exc}") from None

    for key in raw:
        if key not in ("stack", "thresholds", "timeouts", "logs", "services"):
            raise StackFileError(
                f"{path}: unknown table '{key}' (known: stack, thresholds, timeouts, logs, services)"
            )
    if "stack" not in raw:
        raise StackFileError(f"{path}: missing [stack] table")
    head = _check_table(path, "stack", raw["stack"], "stack")
    for required in ("name", "compose_project"):
        if required not in head:
            raise StackFileError(f"{path}: missing key 'stack.{required}'")

    services_raw = raw.get("services")
    if not isinstance(services_raw, dict) or not services_raw:
        raise StackFileError(f"{path}: no services: add at least one [services.NAME] table")
    services = {name: _service(path, name, table) for name, table in services_raw.items()}
    for service in services.values():
        for dep in service.depends_on:
            if dep not in services:
                raise StackFileError(
                    f"{path}: 'services.{service.name}.depends_on' names unknown service '{dep}'"
                )

    thresholds = _check_table(path, "thresholds", raw.get("thresholds", {}), "thresholds")
    timeouts = _check_table(path, "timeouts", raw.get("timeouts", {}), "timeouts")
    logs = _check_table(path, "logs", raw.get("logs", {}), "logs")
    defaults = LogRules()
    log_rules = LogRules(
        tail=int(logs.get("tail", defaults.tail)),
        since_s=float(logs.get("since_s", defaults.since_s)),
        patterns=tuple(logs.get("patterns", defaults.patterns)),
        ignore=tuple(logs.get("ignore", defaults.ignore)),
    )
    for pattern in (*log_rules.patterns, *log_rules.ignore):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise StackFileError(f"{path}: invalid regex {pattern!r} in [logs]: {exc}") from None

    return Stack(
        path=path,
        name=head["name"],
        compose_project=head["compose_project"],
        docker_host=head.get("docker_host"),
        services=services,
        thresholds=Thresholds(**{k: float(v) for k, v in thresholds.items()}),
        timeouts=Timeouts(**{k: float(v) for k, v in timeouts.items()}),
        logs=log_rules,
    )
