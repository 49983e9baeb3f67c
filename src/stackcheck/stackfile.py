"""Write a stack file from a compose file: ``stackcheck init``.

The compose file already says most of what a stack file needs: the services and
their ``depends_on``, the ports they publish, the healthchecks, which service is
PostgreSQL. This module reads it (resolved by ``docker compose config`` when a
compose client is there and the file resolves, else the file itself with
compose's ``${VAR:-default}`` interpolation), guesses the rest, and writes a
stack file with a comment on every guessed value. The result is loaded with the
suite's own loader before it is written, so ``init`` never leaves a file the
checks refuse.

What is read is a user's file, but treated as hostile all the same: bounded in
size, parsed with YAML's safe loader, only known keys walked, every name checked
against compose's rules, every value written as a TOML string with escapes, and
no password ever copied: a DSN the stack file gets has its password removed, and
the password is left to PGPASSWORD.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from stackcheck.config import (
    MAX_SERVICES,
    PROJECT_NAME,
    SERVICE_NAME,
    StackFileError,
    load_stack,
)

# Compose's own search order for a file when none is given.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
MAX_COMPOSE_BYTES = 4 * 1024 * 1024
MAX_ENV_FILE_BYTES = 256 * 1024
CONFIG_TIMEOUT_S = 15.0
POSTGRES_IMAGE = re.compile(
    r"(^|/)(postgres|postgresql|postgis|timescaledb[\w-]*|pgvector)(:|@|$)", re.IGNORECASE
)
URL_IN_TEXT = re.compile(r"https?://[^\s'\"|;&<>`$]+")
# libpq's schemes, SQLAlchemy's (postgresql+psycopg://) and Django's PostGIS one.
DSN_IN_TEXT = re.compile(r"(?:postgres(?:ql)?(?:\+\w+)?|postgis)://[^\s'\"]+")
HEALTH_PATH = "/health"


class InitError(Exception):
    """A one-line reason ``init`` wrote nothing."""


@dataclass
class Plan:
    """One service's lines in the stack file: values and, for each guess, why."""

    name: str
    depends_on: list[str] = field(default_factory=list)
    port: int | None = None
    port_note: str | None = None
    health_url: str | None = None
    health_note: str | None = None
    postgres_dsn: str | None = None
    postgres_note: str | None = None
    postgres_reachable: bool = True
    notes: list[str] = field(default_factory=list)


# --- reading -----------------------------------------------------------------


def find_compose_file(directory: Path) -> Path:
    for name in COMPOSE_FILES:
        if (directory / name).is_file():
            return directory / name
    raise InitError(f"no compose file in {directory} (looked for {', '.join(COMPOSE_FILES)})")


def _read_text(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as handle:
            if not path.is_file():
                raise InitError(f"{path} is not a regular file")
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InitError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InitError(f"{path} is larger than {limit // 1024} KiB: not a compose file")
    return data.decode("utf-8", errors="replace")


def _load_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml  # only `init` reads YAML

    try:
        model = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InitError(f"{where} is not valid YAML{at}") from None
    if not isinstance(model, dict) or not isinstance(model.get("services"), dict):
        raise InitError(f"{where} has no 'services' mapping: not a compose file")
    return model


INTERPOLATION = re.compile(
    r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution, enough for ports, images and URLs.

    ``${VAR:?message}`` with VAR unset becomes empty here (compose would refuse
    the file; ``init`` only needs the other values).
    """

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, word = match.group(2), match.group(3) or ""
        value = env.get(name)
        if op in (":-", ":?") and not value:
            return word if op == ":-" else ""
        if op in ("-", "?") and value is None:
            return word if op == "-" else ""
        if op == ":+":
            return word if value else ""
        if op == "+":
            return word if value is not None else ""
        return value or ""

    return INTERPOLATION.sub(one, text)


MAX_NODES = 200_000
MAX_DEPTH = 32


def _walk_strings(node: Any, env: Mapping[str, str] | None) -> Any:
    """Interpolate every string of a parsed compose file (``env`` None: only bound it).

    Bounded: YAML aliases can make a small file a huge tree (an alias bomb), so
    past MAX_NODES values or MAX_DEPTH levels it refuses instead of walking on.
    """
    budget = [MAX_NODES]

    def walk(value: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            raise InitError(
                "the compose file is too deeply nested or too large once its aliases "
                f"are expanded (over {MAX_NODES} values or {MAX_DEPTH} levels)"
            )
        if isinstance(value, str):
            return value if env is None else interpolate(value, env)
        if isinstance(value, list):
            return [walk(x, depth + 1) for x in value]
        if isinstance(value, dict):
            return {str(k): walk(v, depth + 1) for k, v in value.items()}
        return value

    return walk(node, 0)


def resolved_model(path: Path, project: str | None) -> tuple[dict[str, Any], str]:
    """The compose model and how it was read (`docker compose config`, or the file)."""
    text = _read_text(path, MAX_COMPOSE_BYTES)
    how = _compose_config(path, project)
    if how is not None:
        output, client = how
        try:
            model = _walk_strings(_load_yaml(output, f"`{client} config`"), None)
            return model, f"resolved by `{client} config`"
        except InitError:
            pass
    model = _load_yaml(text, str(path))
    return _walk_strings(model, os.environ), "read directly (no compose client resolved it)"


def _compose_config(path: Path, project: str | None) -> tuple[str, str] | None:
    """``docker compose config`` (v2) or ``docker-compose config`` (v1), bounded; None if neither works."""
    candidates: list[tuple[list[str], str]] = []
    if shutil.which("docker"):
        candidates.append((["docker", "compose"], "docker compose"))
    if shutil.which("docker-compose"):
        candidates.append((["docker-compose"], "docker-compose"))
    for words, client in candidates:
        argv = [*words, "-f", str(path.resolve())]
        if project:
            argv += ["-p", project]
        argv.append("config")
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                timeout=CONFIG_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                cwd=path.parent,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and len(done.stdout) <= MAX_COMPOSE_BYTES:
            return done.stdout.decode("utf-8", errors="replace"), client
    return None


# --- guessing ----------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    target: int
    published: int | None
    host_ip: str | None
    protocol: str = "tcp"


def parse_ports(entries: Any) -> list[Port]:
    """Compose's short (``"127.0.0.1:8080:80/tcp"``) and long port syntax; ranges skipped."""
    found: list[Port] = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            target, published = _int(entry.get("target")), _int(entry.get("published"))
            if target:
                ip = entry.get("host_ip")
                found.append(
                    Port(
                        target,
                        published,
                        ip if isinstance(ip, str) else None,
                        str(entry.get("protocol") or "tcp"),
                    )
                )
            continue
        if isinstance(entry, int):
            if _int(entry):
                found.append(Port(entry, None, None))
            continue
        if not isinstance(entry, str):
            continue
        spec, _, protocol = entry.partition("/")
        host_ip = None
        if spec.startswith("["):  # [::1]:8080:80
            closing = spec.find("]")
            host_ip, spec = spec[1:closing], spec[closing + 2 :]
        parts = spec.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        target = _int(parts[-1])
        published = _int(parts[0]) if len(parts) == 2 else None
        if target:
            found.append(Port(target, published, host_ip or None, protocol or "tcp"))
    return found


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 65536 else None
    if isinstance(value, str) and value.isdigit():
        return _int(int(value))
    return None


def _environment(service: Mapping[str, Any], base: Path) -> dict[str, str]:
    """The service's environment: ``environment`` over its ``env_file``s (names and values)."""
    env: dict[str, str] = {}
    files = service.get("env_file") or []
    for entry in files if isinstance(files, list) else [files]:
        name = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(name, str):
            continue
        try:
            text = _read_text(base / name, MAX_ENV_FILE_BYTES)
        except InitError:
            continue
        for line in text.splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key and not key.startswith("#"):
                env[key.strip()] = value.strip().strip("'\"")
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        for item in declared:
            if isinstance(item, str):
                key, _, value = item.partition("=")
                env[key] = value
    elif isinstance(declared, dict):
        env.update({str(k): "" if v is None else str(v) for k, v in declared.items()})
    return env


def _healthcheck_words(service: Mapping[str, Any]) -> list[str]:
    test = (
        (service.get("healthcheck") or {}).get("test")
        if isinstance(service.get("healthcheck"), dict)
        else None
    )
    if isinstance(test, str):
        return test.split()
    if isinstance(test, list):
        return [str(w) for w in test if isinstance(w, (str, int))]
    return []


def _host(port: Port) -> str:
    """Where the checker reaches a published port: its host IP, or this machine's loopback."""
    if port.host_ip and port.host_ip not in ("0.0.0.0", "::", ""):
        return f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip
    return "127.0.0.1"


def _published(ports: list[Port], target: int) -> Port | None:
    for port in ports:
        if port.target == target and port.published and port.protocol == "tcp":
            return port
    return None


def is_postgres(
    name: str, service: Mapping[str, Any], env: Mapping[str, str], dsn: tuple[str, str, str] | None
) -> str | None:
    """Why this service looks like PostgreSQL, or None.

    Not by POSTGRES_* variables alone: applications often share the database's
    env file, and would be taken for databases.
    """
    image = service.get("image")
    if isinstance(image, str) and POSTGRES_IMAGE.search(image):
        return f"image {image}"
    if any(w.endswith("pg_isready") for w in _healthcheck_words(service)):
        return "its healthcheck runs pg_isready"
    if "PGDATA" in env:
        return "PGDATA in its environment"
    if dsn is not None:
        return f"{dsn[2]} connects to it with a PostgreSQL URL"
    return None


def _dsn_users(model: Mapping[str, Any], target: str, base: Path) -> tuple[str, str, str] | None:
    """A ``postgresql://user:…@TARGET:port/db`` URL in another service's environment:
    (user, database, which service); the password is never kept."""
    for name, other in model["services"].items():
        if name == target or not isinstance(other, dict):
            continue
        for value in _environment(other, base).values():
            for match in DSN_IN_TEXT.finditer(value):
                try:
                    parts = urlsplit(match.group(0))
                    if parts.hostname != target.lower() or not parts.username:
                        continue
                except ValueError:
                    continue
                database = unquote(parts.path.lstrip("/")) or unquote(parts.username)
                return unquote(parts.username), database, name
    return None


def _pg_isready_user(words: list[str]) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word in ("-U", "--username"):
            return words[i + 1]
        if word.startswith("--username="):
            return word.split("=", 1)[1]
    return None


def plan_service(
    name: str, service: Mapping[str, Any], model: Mapping[str, Any], base: Path
) -> Plan:
    plan = Plan(name)
    deps = service.get("depends_on") or []
    names = list(deps) if isinstance(deps, (list, dict)) else []
    plan.depends_on = [str(d) for d in names if isinstance(d, str)]
    ports = parse_ports(service.get("ports"))
    exposed = [
        p
        for p in (
            _int(x if not isinstance(x, str) else x.split("/")[0])
            for x in (service.get("expose") or [])
        )
        if p
    ]
    env = _environment(service, base)
    replicas = (
        (service.get("deploy") or {}).get("replicas")
        if isinstance(service.get("deploy"), dict)
        else None
    )
    if isinstance(replicas, int) and replicas > 1:
        plan.notes.append(f"deploy.replicas = {replicas}: every replica is checked")

    found = _dsn_users(model, name, base)
    postgres = is_postgres(name, service, env, found)
    if postgres:
        target = next((p.target for p in ports if p.target == 5432), None)
        if target is None and ports:
            target = ports[0].target
        plan.port = target or 5432
        plan.port_note = "PostgreSQL's port inside the network" + (
            "" if target else " (guessed: its default)"
        )
        if found:
            user, database, source = found
            why = f"user and database from {source}'s connection URL (its password left out)"
        else:
            user = (
                _pg_isready_user(_healthcheck_words(service))
                or env.get("POSTGRES_USER")
                or "postgres"
            )
            database = env.get("POSTGRES_DB") or user
            why = (
                "user and database from POSTGRES_USER/POSTGRES_DB or the healthcheck, else postgres"
            )
        published = _published(ports, plan.port)
        if published is None:
            plan.postgres_reachable = False
            plan.postgres_note = (
                f"PostgreSQL ({postgres}), but port {plan.port} is not published on the host, "
                "so the checker cannot reach it: uncomment with an address it can reach"
            )
            host, port = "127.0.0.1", plan.port
        else:
            host, port = _host(published), published.published or plan.port
            plan.postgres_note = (
                f"guessed: PostgreSQL ({postgres}); {why}; password from PGPASSWORD"
            )
        plan.postgres_dsn = (
            f"postgresql://{quote(user, safe='')}@{host}:{port}/{quote(database, safe='')}"
        )
        return plan

    if ports:
        plan.port = ports[0].target
    elif exposed:
        plan.port = exposed[0]
    if plan.port is not None:
        plan.port_note = "guessed: the first port it publishes or exposes"
    # A URL its own healthcheck fetches, else the common path on its published port.
    for word in _healthcheck_words(service):
        match = URL_IN_TEXT.search(word)
        if not match:
            continue
        try:
            parts = urlsplit(match.group(0))
            inner = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        published = _published(ports, inner)
        path = parts.path or "/"
        if published is not None:
            plan.health_url = f"{parts.scheme}://{_host(published)}:{published.published}{path}"
            plan.health_note = f"from its healthcheck ({parts.scheme}://…:{inner}{path}), published on {published.published}"
        else:
            plan.health_note = (
                f"its healthcheck fetches port {inner}{path}, which is not published on the host: "
                "no health_url (the checker could not reach it)"
            )
        return plan
    web = next((p for p in ports if p.published and p.protocol == "tcp"), None)
    if web is not None:
        plan.health_url = f"http://{_host(web)}:{web.published}{HEALTH_PATH}"
        plan.health_note = (
            f"guessed: the common path {HEALTH_PATH} on published port {web.published}; "
            "change it if the service serves health elsewhere (/healthz, /api/health), or remove it"
        )
    return plan


def project_name(path: Path, given: str | None, model: Mapping[str, Any]) -> tuple[str, str]:
    """The compose project, the way compose picks it, and where it came from."""
    if given:
        return given, "from -p"
    from_env = os.environ.get("COMPOSE_PROJECT_NAME")
    if from_env:
        return from_env, "from COMPOSE_PROJECT_NAME"
    named = model.get("name")
    if isinstance(named, str) and named:
        return named, "from the compose file's name: key"
    directory = path.resolve().parent.name.lower()
    normalised = re.sub(r"[^a-z0-9_-]", "", directory).lstrip("_-")
    return normalised, f"guessed: the directory name, as compose derives it ({directory!r})"


# --- writing -----------------------------------------------------------------


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes, plus DEL, which TOML also forbids raw."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(name: str) -> str:
    """A TOML key: bare when TOML allows it, else quoted."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def _comment(text: str) -> str:
    """One comment line: no newline or control character can end the comment early."""
    return "# " + "".join(c if c.isprintable() else "?" for c in text)


def render(
    project: str, project_note: str, plans: list[Plan], source: str, how: str, skipped: list[str]
) -> str:
    lines = [
        f"# Written by `stackcheck init` from {source} ({how}) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "# Every value marked 'guessed' is a guess: check it, then run `pytest checks/ --stack THIS_FILE`.",
        "# Every key is described in stackcheck's README. No password is written here:",
        "# the database password comes from PGPASSWORD (or ~/.pgpass).",
        "[stack]",
        f"name = {toml_string(project)}",
        f"compose_project = {toml_string(project)}  {_comment(project_note)}",
    ]
    for name in skipped:
        lines.append(_comment(name))
    included = {p.name for p in plans}
    for plan in plans:
        lines += ["", f"[services.{_key(plan.name)}]"]
        lines += [_comment(note) for note in plan.notes]
        deps = [d for d in plan.depends_on if d in included]
        if deps:
            lines.append(f"depends_on = [{', '.join(toml_string(d) for d in deps)}]")
        if plan.health_url:
            lines.append(
                f"health_url = {toml_string(plan.health_url)}  {_comment(plan.health_note or '')}"
            )
        elif plan.health_note:
            lines.append(_comment(plan.health_note))
        if plan.postgres_dsn and plan.postgres_reachable:
            lines.append(f"postgres_dsn = {toml_string(plan.postgres_dsn)}")
            lines.append(_comment(plan.postgres_note or ""))
        elif plan.postgres_dsn:
            lines.append(_comment(plan.postgres_note or ""))
            lines.append(_comment(f"postgres_dsn = {toml_string(plan.postgres_dsn)}"))
        if plan.port is not None:
            note = f"  {_comment(plan.port_note)}" if plan.port_note else ""
            lines.append(f"port = {plan.port}{note}")
    return "\n".join(lines) + "\n"


def generate(compose: Path, project: str | None = None) -> str:
    """The stack file's text for ``compose``; InitError with one line if there is none."""
    model, how = resolved_model(compose, project)
    name, note = project_name(compose, project, model)
    if not PROJECT_NAME.fullmatch(name):
        raise InitError(
            f"compose project {name[:64]!r} is not a valid project name: give one with -p"
        )
    services = model["services"]
    if len(services) > MAX_SERVICES:
        raise InitError(
            f"{compose} has {len(services)} services; a stack file holds at most {MAX_SERVICES}"
        )
    plans, skipped = [], []
    for service_name, service in services.items():
        if not isinstance(service_name, str) or not SERVICE_NAME.fullmatch(service_name):
            skipped.append(
                f"left out service {str(service_name)[:64]!r}: not a compose service name"
            )
            continue
        if isinstance(service, dict) and service.get("profiles"):
            skipped.append(
                f"left out service {service_name}: in a compose profile, not started by "
                "default; add it if you run that profile"
            )
            continue
        plans.append(
            plan_service(
                service_name, service if isinstance(service, dict) else {}, model, compose.parent
            )
        )
    if not plans:
        raise InitError(f"{compose} declares no usable service")
    return render(name, note, plans, compose.name, how, skipped)


def validate(text: str) -> None:
    """InitError unless the suite's own loader accepts ``text`` (a bug here, never the user's)."""
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp, "stack.toml")
        trial.write_text(text, encoding="utf-8")
        try:
            load_stack(trial)
        except StackFileError as exc:  # a bug here: never hand the user a broken file
            raise InitError(f"the generated stack file does not load: {exc}") from None


def write(text: str, out: Path, force: bool) -> None:
    """Write the stack file once it loads; never overwrite unless forced."""
    validate(text)
    if not force and (out.exists() or out.is_symlink()):
        raise InitError(f"{out} exists: pass --force to overwrite it")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(out, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise InitError(f"{out} exists: pass --force to overwrite it") from None
    except OSError as exc:
        raise InitError(f"cannot write {out}: {exc.strerror or exc}") from None
