"""The stack file: which compose project to inspect, and how.

Every key is declared once in ``SCHEMA``; anything else in the file is an error
that names it, because a typo must never silently turn a check off.

The file is hostile input as much as configuration: every value is checked
here, once, so that nothing odd reaches a probe, a command or a report. Each
limit below is named in the one-line error that enforces it:

- the file: a regular file (not a FIFO, device or directory), at most 1 MiB;
- the stack: ``name`` is printable text of at most 100 characters;
  ``compose_project`` follows compose's rule (lowercase letters, digits, ``_``,
  ``-``, starting with a letter or digit), at most 255 characters;
- at most 200 services (names: compose's grammar, at most 63 characters) and
  1,000 ``depends_on`` edges in all;
- numbers: finite (no ``nan``/``inf``), greater than 0, and at most their
  ``MAXIMA`` (percentages 100, ``stable_window_s`` a day, ``probe_s`` 300 s,
  an explicit ``connect_s`` no more than ``probe_s``, ``tail`` 10,000 lines,
  ``since_s`` a week);
- ``logs.patterns``: 1 to 100 non-empty regexes of at most 500 characters,
  none matching the empty string; ``logs.ignore``: at most 100 such regexes;
  all compiled here exactly as the log probe compiles them;
- ``gaps``: check names (``^[a-z][a-z0-9_]*$``, at most 64 characters);
- ``postgres_via`` ``dsn``/``exec`` and ``health_via`` ``host``/``exec``, each
  path with what it needs (``exec``: a role, from ``postgres_user`` or the DSN,
  and no password in the DSN; ``health_via = "exec"``: a ``health_url``);
  ``postgres_user``/``postgres_db`` only with ``exec``, printable, at most 63
  characters;
- ``notify.urls``: at most 10 distinct http(s) URLs of at most 2048 characters
  (secrets: no error quotes them); ``notify.escalate_after_min`` at most a day.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict

from stackcheck.redact import redact_text


class StackFileError(Exception):
    """A stack file that cannot be used; the message is one line naming file and key."""

    def __init__(self, message: str) -> None:
        # A backstop: whatever a message quotes from the file (or its path), it
        # stays one line, because the usage error is printed as given.
        super().__init__("".join(c if c.isprintable() else _escape(c) for c in message))


def _escape(char: str) -> str:
    return repr(char)[1:-1]


def _shown(text: str, limit: int = 64) -> str:
    """``text`` fit for a one-line error: control characters escaped, at most ``limit`` kept."""
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _quoted(text: str, limit: int = 64) -> str:
    """``text`` quoted for a one-line error (repr escapes what is not printable)."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


@dataclass(frozen=True)
class Thresholds:
    memory_percent: float = 90.0
    cpu_percent: float = 90.0
    pg_connections_percent: float = 80.0
    data_disk_percent: float = 90.0
    host_disk_percent: float = 90.0
    host_memory_percent: float = 90.0
    stable_window_s: float = 300.0


@dataclass(frozen=True)
class Timeouts:
    probe_s: float = 5.0
    connect_s: float = 3.0


@dataclass(frozen=True)
class SSHSettings:
    """How to log in to an ``ssh://`` engine (the stack file's optional [ssh] table).

    Paths are as written in the file, ``~`` expanded, relative ones resolved
    against the stack file's directory; None means the defaults: the keys of
    the SSH agent and ~/.ssh, and ~/.ssh/known_hosts.
    """

    identity_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: float | None = None


@dataclass(frozen=True)
class LogRules:
    tail: int = 200
    since_s: float = 600.0
    patterns: tuple[str, ...] = ("error", "exception", "fatal", "traceback", "panic")
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notify:
    """Who is paged, and when the runbook escalates (``[notify]``)."""

    # Incoming-webhook URLs. Secrets: never printed, never written to a report.
    urls: tuple[str, ...] = ()
    # The runbook: "If not resolved within 15 minutes: page team lead".
    escalate_after_min: float = 15.0


@dataclass(frozen=True)
class Service:
    name: str
    depends_on: tuple[str, ...] = ()
    health_url: str | None = None
    port: int | None = None
    postgres_dsn: str | None = None
    # How the PostgreSQL checks reach the server: "dsn" (psycopg from the
    # checker, through postgres_dsn) or "exec" (pg_isready and psql inside this
    # service's container, through the engine, as postgres_user on postgres_db).
    postgres_via: str = "dsn"
    postgres_user: str | None = None
    postgres_db: str | None = None
    # How http_health fetches health_url: "host" (from the checker) or "exec"
    # (curl inside this service's container, through the engine).
    health_via: str = "host"
    # Checks that cannot run on this service by design (e.g. no ping in a slim
    # image): skipped with this reason, instead of "could not check" every run.
    gaps: tuple[str, ...] = ()

    @property
    def postgres(self) -> bool:
        """Whether the PostgreSQL checks apply: a DSN, or the in-container path."""
        return bool(self.postgres_dsn) or self.postgres_via == "exec"


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
    notify: Notify = field(default_factory=Notify)
    ssh: SSHSettings = field(default_factory=SSHSettings)

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


# The limits of the module docstring. The file's size bounds everything else
# (no value can be longer than the file); the counts bound the work of a run,
# which grows with services, edges and patterns.
MAX_FILE_BYTES = 1024 * 1024
MAX_SERVICES = 200
MAX_EDGES = 1000
MAX_STACK_NAME = 100
MAX_PROJECT_NAME = 255  # compose itself sets none; this keeps report lines bounded
MAX_URL = 2048
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 500
MAX_GAPS = 64
MAX_GAP_CHARS = 64
MAX_PROBE_S = 300.0
MAX_PG_NAME = 63  # PostgreSQL's NAMEDATALEN - 1
POSTGRES_VIA = ("dsn", "exec")
HEALTH_VIA = ("host", "exec")
DAY_S = 86400.0
MAX_NOTIFY_URLS = 10

# Inclusive maxima of the numbers, by "table.key" ("services.*.key" for services).
# Every number must also be finite and greater than 0.
MAXIMA: dict[str, float] = {
    "thresholds.memory_percent": 100,
    "thresholds.cpu_percent": 100,
    "thresholds.pg_connections_percent": 100,
    "thresholds.data_disk_percent": 100,
    "thresholds.host_disk_percent": 100,
    "thresholds.host_memory_percent": 100,
    "thresholds.stable_window_s": DAY_S,
    "timeouts.probe_s": MAX_PROBE_S,
    "timeouts.connect_s": MAX_PROBE_S,  # and, when given, at most probe_s
    "ssh.connect_timeout_s": MAX_PROBE_S,  # the probe deadline bounds it anyway
    "logs.tail": 10_000,
    "logs.since_s": 7 * DAY_S,
    "notify.escalate_after_min": DAY_S / 60,
}

# key -> (type, description) for each table; "services.*" applies to every service.
SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], str]]] = {
    "stack": {
        "name": (str, f"display name: printable text, at most {MAX_STACK_NAME} characters"),
        "compose_project": (
            str,
            "value of the com.docker.compose.project label (compose's rule: lowercase "
            "letters, digits, '_', '-', starting with a letter or digit; at most "
            f"{MAX_PROJECT_NAME} characters)",
        ),
        "docker_host": (
            str,
            "Docker engine address: unix://, tcp:// or ssh://user@host[:port]; "
            "default DOCKER_HOST or the local socket",
        ),
    },
    "ssh": {
        "identity_file": (
            str,
            "private key for an ssh:// docker_host; default: the SSH agent's and ~/.ssh's keys",
        ),
        "known_hosts": (
            str,
            "known_hosts file that must hold the engine host's key; default ~/.ssh/known_hosts",
        ),
        "connect_timeout_s": (
            (int, float),
            "SSH connect, banner and login timeout; default timeouts.connect_s, "
            "never past the probe deadline",
        ),
    },
    "thresholds": {
        "memory_percent": ((int, float), "memory use that fails memory_headroom, % of limit"),
        "cpu_percent": ((int, float), "CPU use that fails cpu_headroom, % of limit"),
        "pg_connections_percent": ((int, float), "connections that fail pg_connections, %"),
        "data_disk_percent": (
            (int, float),
            "use of the database's data filesystem that fails pg_data_disk, %",
        ),
        "host_disk_percent": (
            (int, float),
            "use of the filesystem of the engine's data directory that fails host_disk, %",
        ),
        "host_memory_percent": (
            (int, float),
            "memory in use on the Docker host (not MemAvailable) that fails host_memory, %",
        ),
        "stable_window_s": (
            (int, float),
            "restarts or OOM kills this recent fail stability (at most a day, 86400)",
        ),
    },
    "timeouts": {
        "probe_s": ((int, float), "total deadline of every probe (at most 300)"),
        "connect_s": ((int, float), "TCP/PostgreSQL connect timeout, at most probe_s"),
    },
    "logs": {
        "tail": (int, "log lines read per container (at most 10000)"),
        "since_s": ((int, float), "only lines this recent are read (at most a week, 604800)"),
        "patterns": (
            list,
            f"case-insensitive words or regexes that mark a bad line (1 to {MAX_PATTERNS}, "
            f"each at most {MAX_PATTERN_CHARS} characters)",
        ),
        "ignore": (
            list,
            f"regexes of known-harmless lines (at most {MAX_PATTERNS}, "
            f"each at most {MAX_PATTERN_CHARS} characters)",
        ),
    },
    "notify": {
        "urls": (
            list,
            "incoming-webhook URLs (Slack-compatible) paged when an incident opens, "
            f"escalates and resolves (at most {MAX_NOTIFY_URLS}); secrets, never printed",
        ),
        "escalate_after_min": (
            (int, float),
            "minutes an incident may stay open before it escalates (default 15, the "
            "runbook's; at most a day, 1440)",
        ),
    },
    "services.*": {
        "depends_on": (
            list,
            f"services this one needs (at most {MAX_EDGES} edges in the whole stack, "
            f"which holds at most {MAX_SERVICES} services)",
        ),
        "health_url": (str, f"HTTP URL that must answer 200 (at most {MAX_URL} characters)"),
        "port": (int, "port the others reach it on inside the compose network"),
        "postgres_dsn": (str, "libpq URL or key=value string; enables the PostgreSQL checks"),
        "postgres_via": (
            str,
            "how the PostgreSQL checks reach the server: 'dsn' (default: from the checker "
            "through postgres_dsn) or 'exec' (pg_isready and psql inside this service's "
            "container, through the engine; no port needs publishing)",
        ),
        "postgres_user": (
            str,
            f"with postgres_via = 'exec': the role pg_isready and psql use (default: the "
            f"DSN's user); at most {MAX_PG_NAME} characters",
        ),
        "postgres_db": (
            str,
            f"with postgres_via = 'exec': the database (default: the DSN's dbname, else the "
            f"user); at most {MAX_PG_NAME} characters",
        ),
        "health_via": (
            str,
            "how http_health fetches health_url: 'host' (default: from the checker) or "
            "'exec' (curl inside this service's container, through the engine)",
        ),
        "gaps": (
            list,
            "checks this service cannot support by design (skipped, not blind); "
            f"check names of at most {MAX_GAP_CHARS} characters",
        ),
    },
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return {"str": "string", "int": "integer", "list": "list"}.get(kind.__name__, kind.__name__)


def _number(maximum: float) -> str:
    return f"{maximum:g}" if maximum < 1e6 else f"{maximum:.0f}"


def _check_table(path: Path, where: str, table: Any, schema_key: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise StackFileError(f"{path}: [{where}] must be a table")
    schema = SCHEMA[schema_key]
    for key, value in table.items():
        name = f"{where}.{_shown(key)}"
        if key not in schema:
            known = ", ".join(schema)
            raise StackFileError(f"{path}: unknown key '{name}' (known: {known})")
        kind, _ = schema[key]
        # bool is an int subclass in Python; a boolean is never a valid value here.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise StackFileError(f"{path}: '{name}' must be a {_type_name(kind)}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise StackFileError(f"{path}: '{name}' must be a list of strings")
        if isinstance(value, int | float):
            # TOML has nan and inf; they pass every comparison below (nan) or
            # turn into nonsense deadlines (inf), and int(nan) raises in a probe.
            if isinstance(value, float) and not math.isfinite(value):
                raise StackFileError(f"{path}: '{name}' must be a finite number, got {value}")
            if value <= 0:
                raise StackFileError(f"{path}: '{name}' must be greater than 0")
            maximum = MAXIMA.get(f"{schema_key}.{key}")
            if maximum is not None and value > maximum:
                raise StackFileError(f"{path}: '{name}' must be at most {_number(maximum)}")
    return table


# Compose's own rule for service names; anything else cannot be a service label,
# and would reach commands and reports.
SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
# Compose's rule for project names (compose-go since v1.2.5 / docker compose
# v2.5.1: "must consist only of lowercase alphanumeric characters, hyphens, and
# underscores as well as start with a letter or number"). No length limit there.
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# What the checks are called: the function test_NAME declares check NAME.
CHECK_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _strings(path: Path, name: str, values: list[str], limit: int) -> tuple[str, ...]:
    """A list of distinct strings of at most ``limit`` entries."""
    if len(values) > limit:
        raise StackFileError(f"{path}: '{name}' has {len(values)} entries; at most {limit}")
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise StackFileError(f"{path}: '{name}' lists {_quoted(value)} twice")
        seen.add(value)
    return tuple(values)


def _address(path: Path, name: str, value: str) -> None:
    """A URL-like value: bounded, and nothing a terminal or a parser reads differently."""
    if not value:
        raise StackFileError(f"{path}: '{name}' must not be empty")
    if len(value) > MAX_URL:
        raise StackFileError(f"{path}: '{name}' is longer than {MAX_URL} characters")
    # urlsplit silently drops tabs and newlines; the probe and the hints would not.
    if any(c.isspace() or not c.isprintable() for c in value):
        raise StackFileError(
            f"{path}: '{name}' must not contain spaces or control characters, "
            f"got {_quoted(redact_text(value, ()), 80)}"
        )


ENGINE_SCHEMES = ("unix", "tcp", "ssh", "http", "https", "npipe")


def _docker_host(path: Path, value: str) -> None:
    """An engine address the Docker SDK takes; an ssh:// one without a password."""
    name = "stack.docker_host"
    _address(path, name, value)
    shown = _quoted(redact_text(value, ()), 80)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise StackFileError(f"{path}: '{name}' is not a valid address ({exc}): {shown}") from None
    if parts.scheme not in ENGINE_SCHEMES:
        raise StackFileError(
            f"{path}: '{name}' must start with one of "
            f"{', '.join(s + '://' for s in ENGINE_SCHEMES)}; got {shown}"
        )
    if parts.scheme == "ssh":
        if not parts.hostname:
            raise StackFileError(f"{path}: '{name}' names no host: {shown}")
        if parts.password is not None:
            raise StackFileError(
                f"{path}: '{name}' holds a password; SSH logins here use keys only "
                "(an agent, ~/.ssh, or [ssh] identity_file): remove it from the address"
            )
        if port == 0:
            raise StackFileError(f"{path}: '{name}' has port 0; a port is 1 to 65535: {shown}")


def _health_url(path: Path, where: str, url: str) -> str:
    name = f"{where}.health_url"
    _address(path, name, url)
    # Errors quote the URL with its password masked: they reach the terminal and CI logs.
    shown = _quoted(redact_text(url, ()), 80)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is out of range or not a number
    except ValueError as exc:
        raise StackFileError(f"{path}: '{name}' is not a valid URL ({exc}): {shown}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StackFileError(f"{path}: '{name}' must be an http(s) URL, got {shown}")
    if port == 0:
        raise StackFileError(f"{path}: '{name}' has port 0; a port is 1 to 65535: {shown}")
    return url


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook, in words that never quote it (it is a secret)."""
    if not url:
        return "is empty"
    if len(url) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL"
    if port == 0:
        return "has port 0"
    return None


def _notify(path: Path, table: Any) -> Notify:
    data = _check_table(path, "notify", table, "notify")
    urls = data.get("urls", [])
    if len(urls) > MAX_NOTIFY_URLS:
        raise StackFileError(
            f"{path}: 'notify.urls' has {len(urls)} entries; at most {MAX_NOTIFY_URLS}"
        )
    for number, url in enumerate(urls, 1):
        problem = webhook_problem(url)
        if problem:  # "entry N", never the URL: it is a secret
            raise StackFileError(f"{path}: 'notify.urls' entry {number} {problem}")
    if len(set(urls)) != len(urls):
        raise StackFileError(f"{path}: 'notify.urls' lists a URL twice")
    after = float(data.get("escalate_after_min", Notify.escalate_after_min))
    return Notify(urls=tuple(urls), escalate_after_min=after)


def _gaps(path: Path, where: str, gaps: list[str]) -> tuple[str, ...]:
    name = f"{where}.gaps"
    for gap in gaps:
        if len(gap) > MAX_GAP_CHARS or not CHECK_NAME.fullmatch(gap):
            raise StackFileError(
                f"{path}: '{name}' entry {_quoted(gap)} is not a check name "
                f"(lowercase letters, digits, '_', starting with a letter; "
                f"at most {MAX_GAP_CHARS} characters)"
            )
    return _strings(path, name, gaps, MAX_GAPS)


def _choice(
    path: Path, where: str, data: dict[str, Any], key: str, choices: tuple[str, ...]
) -> str:
    value: str = data.get(key, choices[0])
    if value not in choices:
        known = " or ".join(repr(c) for c in choices)
        raise StackFileError(f"{path}: '{where}.{key}' must be {known}, got {_quoted(value)}")
    return value


def _pg_name(path: Path, name: str, value: str) -> str:
    """A role or database name for pg_isready/psql's argv: printable, 1 to 63 characters."""
    if not value or len(value) > MAX_PG_NAME or not value.isprintable():
        raise StackFileError(
            f"{path}: '{name}' {_quoted(value)} must be printable text of 1 to "
            f"{MAX_PG_NAME} characters (PostgreSQL's limit for names)"
        )
    return value


def _postgres_exec(
    path: Path,
    where: str,
    data: dict[str, Any],
    via: str,
    dsn: str | None,
    dsn_parts: dict[str, Any],
) -> tuple[str | None, str | None]:
    """(user, database) of the in-container path; (None, None) for the DSN path."""
    if via == "dsn":
        for key in ("postgres_user", "postgres_db"):
            if key in data:
                raise StackFileError(
                    f"{path}: '{where}.{key}' applies only with "
                    f"'{where}.postgres_via' = 'exec' (the DSN path takes them from the DSN)"
                )
        if "postgres_via" in data and dsn is None:
            raise StackFileError(
                f"{path}: '{where}.postgres_via' = 'dsn' needs '{where}.postgres_dsn'"
            )
        return None, None
    if dsn_parts.get("password"):
        # The in-container path never reads a password: psql takes the
        # container's own. One in the file would be a secret kept for nothing.
        raise StackFileError(
            f"{path}: '{where}.postgres_dsn' holds a password, which postgres_via = 'exec' "
            "never uses (psql inside the container takes the container's own "
            "PGPASSWORD or POSTGRES_PASSWORD): remove it"
        )
    user = data["postgres_user"] if "postgres_user" in data else dsn_parts.get("user")
    if user is None:
        raise StackFileError(
            f"{path}: '{where}.postgres_via' = 'exec' needs '{where}.postgres_user' "
            "(or a user in postgres_dsn)"
        )
    user = _pg_name(path, f"{where}.postgres_user", str(user))
    dbname = data["postgres_db"] if "postgres_db" in data else dsn_parts.get("dbname") or user
    return user, _pg_name(path, f"{where}.postgres_db", str(dbname))


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
        _health_url(path, where, url)
    port = data.get("port")
    if port is not None and not 0 < port < 65536:
        raise StackFileError(f"{path}: '{where}.port' must be between 1 and 65535")
    dsn = data.get("postgres_dsn")
    dsn_parts: dict[str, Any] = {}
    if dsn is not None:
        try:
            dsn_parts = conninfo_to_dict(dsn)
        except Exception:
            # The library's message may quote the DSN, password included.
            raise StackFileError(
                f"{path}: '{where}.postgres_dsn' is not a valid libpq DSN"
            ) from None
    health_via = _choice(path, where, data, "health_via", HEALTH_VIA)
    if health_via == "exec" and url is None:
        raise StackFileError(
            f"{path}: '{where}.health_via' = 'exec' needs '{where}.health_url', "
            "the URL as the container itself reaches it"
        )
    postgres_via = _choice(path, where, data, "postgres_via", POSTGRES_VIA)
    user, dbname = _postgres_exec(path, where, data, postgres_via, dsn, dsn_parts)
    return Service(
        name=name,
        depends_on=_strings(path, f"{where}.depends_on", data.get("depends_on", []), MAX_EDGES),
        health_url=url,
        port=port,
        postgres_dsn=dsn,
        postgres_via=postgres_via,
        postgres_user=user,
        postgres_db=dbname,
        health_via=health_via,
        gaps=_gaps(path, where, data.get("gaps", [])),
    )


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _not_regular(path: Path, mode: int) -> StackFileError:
    return StackFileError(
        f"{path}: the stack file is {_file_kind(mode)}; it must be a regular file"
    )


def _too_big(path: Path) -> StackFileError:
    return StackFileError(
        f"{path}: the stack file is larger than {MAX_FILE_BYTES} bytes (1 MiB), the limit"
    )


def _read(path: Path) -> str:
    """The file's text, read from a regular file of at most MAX_FILE_BYTES.

    The type is checked before opening: opening a FIFO blocks until a writer
    comes, and /dev/zero never ends. The open is non-blocking all the same and
    the type checked again on the descriptor, in case the path changed between
    the two; the read stops one byte past the limit whatever the file claims.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise StackFileError(f"{path}: stack file not found") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise StackFileError(f"{path}: cannot read stack file: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    if info.st_size > MAX_FILE_BYTES:
        raise _too_big(path)
    chunks: list[bytes] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular(path, mode)
            left = MAX_FILE_BYTES + 1
            while left > 0:
                chunk = os.read(fd, min(left, 65536))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise StackFileError(f"{path}: stack file not found") from None
    except OSError as exc:
        raise StackFileError(f"{path}: cannot read stack file: {exc}") from None
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StackFileError(f"{path}: cannot read stack file: {exc}") from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackFileError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise StackFileError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        # The first clause: the rest advises a Python setting, not a stack file fix.
        raise StackFileError(f"{path}: invalid TOML: {str(exc).split(';')[0]}") from None


def _bad_line_regex(patterns: Iterable[str]) -> re.Pattern[str]:
    """The log probe's one regex for bad lines, built as the probe builds it.

    Any pattern, as a whole word, in any case. Compiled with ``re``, whose
    syntax the stack file promises: the ``regex`` package, a superset, compiles
    whatever ``re`` does.
    """
    from stackcheck.probes import logmatch  # stackcheck.probes imports this module

    return re.compile(logmatch.bad_line_source(list(patterns)), re.IGNORECASE)


def _log_regexes(path: Path, logs: dict[str, Any], rules: LogRules) -> None:
    """Compile the patterns as the log probe will, so that a bad one fails here, named."""
    # Imported here: stackcheck.probes imports this module.
    from stackcheck.probes import logmatch

    if "patterns" in logs and not rules.patterns:
        # "\b(?:)\b" matches every line that has a word in it: all bad.
        raise StackFileError(
            f"{path}: 'logs.patterns' is empty, which would mark every log line as bad; "
            "list at least one pattern (or leave the key out for the defaults)"
        )
    for key, values in (("patterns", rules.patterns), ("ignore", rules.ignore)):
        _strings(path, f"logs.{key}", list(values), MAX_PATTERNS)
        for pattern in values:
            shown = _quoted(pattern)
            if not pattern:
                raise StackFileError(f"{path}: 'logs.{key}' holds an empty pattern")
            if len(pattern) > MAX_PATTERN_CHARS:
                raise StackFileError(
                    f"{path}: 'logs.{key}' pattern {shown} is longer than "
                    f"{MAX_PATTERN_CHARS} characters"
                )
            try:
                # A regex by itself first: "x)|(y" compiles inside the probe's
                # combined regex only by breaking out of its group.
                alone = re.compile(pattern)
            except re.error as exc:
                raise StackFileError(
                    f"{path}: invalid regex {shown} in 'logs.{key}': {exc}"
                ) from None
            if key == "patterns":
                try:
                    # Then exactly as the probe uses it, where "(?i)x" is an
                    # error (global flags not at the start of the expression).
                    _bad_line_regex([pattern])
                except re.error as exc:
                    raise StackFileError(
                        f"{path}: invalid regex {shown} in 'logs.patterns' as the log probe "
                        f"uses it (\\b(?:PATTERN|...)\\b, already case-insensitive): {exc}"
                    ) from None
            problem = logmatch.pattern_problem(pattern)
            if problem:  # would take the log probe's regex engine seconds to compile
                raise StackFileError(f"{path}: 'logs.{key}': {problem}")
            if key == "patterns" and alone.fullmatch("") is not None:
                # "\b(?:a*)\b" matches at every word boundary: every line is bad.
                raise StackFileError(
                    f"{path}: 'logs.patterns' pattern {shown} matches the empty string, "
                    "so it would mark every log line as bad"
                )
            if key == "ignore" and alone.search("") and alone.search("\x01"):
                # Found in an empty line and in a line of one odd character: it
                # needs nothing from the line, so it hides every line ("x?", ".*").
                raise StackFileError(
                    f"{path}: 'logs.ignore' pattern {shown} matches the empty string "
                    "anywhere, so it would hide every log line"
                )
    try:
        _bad_line_regex(rules.patterns)
    except re.error as exc:  # each compiles alone, but not together (a group name twice)
        raise StackFileError(
            f"{path}: 'logs.patterns' do not compile together as one regex: {exc}"
        ) from None
    problem = logmatch.pattern_problem(logmatch.bad_line_source(rules.patterns))
    if problem:
        raise StackFileError(f"{path}: 'logs.patterns' together: {problem}")


TABLES = ("stack", "ssh", "thresholds", "timeouts", "logs", "notify", "services")
MAX_PATH = 4096


def _ssh_path(path: Path, name: str, value: str) -> Path:
    """A path from [ssh]: ``~`` expanded, relative to the stack file's directory."""
    if not value or len(value) > MAX_PATH or not value.isprintable():
        raise StackFileError(
            f"{path}: '{name}' must be a path of 1 to {MAX_PATH} printable characters, "
            f"got {_quoted(value)}"
        )
    return path.parent / Path(value).expanduser()


def _ssh(path: Path, raw: Any) -> SSHSettings:
    table = _check_table(path, "ssh", raw, "ssh")
    found: dict[str, Any] = {}
    for key in ("identity_file", "known_hosts"):
        if key in table:
            found[key] = _ssh_path(path, f"ssh.{key}", table[key])
    if "connect_timeout_s" in table:
        found["connect_timeout_s"] = float(table["connect_timeout_s"])
    return SSHSettings(**found)


def load_stack(path: Path) -> Stack:
    """Read and validate a stack file; raise StackFileError with a one-line reason."""
    raw = _parse(path, _read(path))

    for key in raw:
        if key not in TABLES:
            raise StackFileError(
                f"{path}: unknown table '{_shown(key)}' (known: {', '.join(TABLES)})"
            )
    if "stack" not in raw:
        raise StackFileError(f"{path}: missing [stack] table")
    head = _check_table(path, "stack", raw["stack"], "stack")
    for required in ("name", "compose_project"):
        if required not in head:
            raise StackFileError(f"{path}: missing key 'stack.{required}'")
    name = head["name"]
    if not name.strip() or len(name) > MAX_STACK_NAME or not name.isprintable():
        raise StackFileError(
            f"{path}: 'stack.name' {_quoted(name)} must be printable text of 1 to "
            f"{MAX_STACK_NAME} characters (no control characters)"
        )
    project = head["compose_project"]
    if len(project) > MAX_PROJECT_NAME or not PROJECT_NAME.fullmatch(project):
        raise StackFileError(
            f"{path}: 'stack.compose_project' {_quoted(project)} is not a compose project "
            "name (lowercase letters, digits, '_', '-', starting with a letter or digit; "
            f"at most {MAX_PROJECT_NAME} characters)"
        )
    docker_host = head.get("docker_host")
    if docker_host is not None:
        _docker_host(path, docker_host)
    ssh = _ssh(path, raw.get("ssh", {}))

    services_raw = raw.get("services")
    if not isinstance(services_raw, dict) or not services_raw:
        raise StackFileError(f"{path}: no services: add at least one [services.NAME] table")
    if len(services_raw) > MAX_SERVICES:
        raise StackFileError(
            f"{path}: {len(services_raw)} services; a stack file may declare at most {MAX_SERVICES}"
        )
    services = {name: _service(path, name, table) for name, table in services_raw.items()}
    edges = sum(len(service.depends_on) for service in services.values())
    if edges > MAX_EDGES:
        raise StackFileError(
            f"{path}: {edges} depends_on edges in all; a stack file may declare at most {MAX_EDGES}"
        )
    for service in services.values():
        for dep in service.depends_on:
            if dep not in services:
                raise StackFileError(
                    f"{path}: 'services.{service.name}.depends_on' names unknown service "
                    f"'{_shown(dep)}'"
                )

    thresholds = _check_table(path, "thresholds", raw.get("thresholds", {}), "thresholds")
    timeouts = _check_table(path, "timeouts", raw.get("timeouts", {}), "timeouts")
    probe_s = timeouts.get("probe_s", Timeouts.probe_s)
    # Only an explicit connect_s: the default (3 s) is cut to probe_s by the gathering.
    if "connect_s" in timeouts and timeouts["connect_s"] > probe_s:
        raise StackFileError(
            f"{path}: 'timeouts.connect_s' ({timeouts['connect_s']:g}) must be at most "
            f"'timeouts.probe_s' ({probe_s:g})"
        )
    logs = _check_table(path, "logs", raw.get("logs", {}), "logs")
    defaults = LogRules()
    log_rules = LogRules(
        tail=int(logs.get("tail", defaults.tail)),
        since_s=float(logs.get("since_s", defaults.since_s)),
        patterns=tuple(logs.get("patterns", defaults.patterns)),
        ignore=tuple(logs.get("ignore", defaults.ignore)),
    )
    _log_regexes(path, logs, log_rules)

    return Stack(
        path=path,
        name=name,
        compose_project=project,
        docker_host=docker_host,
        services=services,
        thresholds=Thresholds(**{k: float(v) for k, v in thresholds.items()}),
        timeouts=Timeouts(**{k: float(v) for k, v in timeouts.items()}),
        logs=log_rules,
        notify=_notify(path, raw.get("notify", {})),
        ssh=ssh,
    )
