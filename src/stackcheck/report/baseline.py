"""What changed since the last healthy run: a baseline per stack, and its differences.

Every healthy run of all the checks (not partial, none failed, none blind)
saves what it saw of each service in ``baseline-<stack>.json`` beside the other
reports: per container its id, image (tag and id), creation and start times,
restart count, state, compose's config-hash label, mounts, memory and CPU
limits and keyed digests of its environment; PostgreSQL's ``max_connections``
and server version; the data filesystem's size and free space. Every run
compares what it saw with that file and lists the differences, each with how
long ago it happened when the facts say so (a new container's creation time,
a restart's start time); the run's outputs show them before the root causes.

The environment is never stored, only HMAC-SHA256 digests of each ``NAME=value``
(and of the whole), computed in the probe under a random key kept in the reports
directory (``.stackcheck-key``, mode 0600): the values never leave the probe,
the diff can still say which variable changed (by name), and a short secret
cannot be recovered from a baseline file by trying guesses without the key.

The baseline file is data, as hostile as any: read without following links or
blocking, at most ``READ_MAX`` bytes, its shape checked whole. A file that is
unusable is ignored with one line saying why, never a crash; the run goes on
as if there were none, and the next healthy run replaces it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stackcheck.model import CheckRef
from stackcheck.probes.facts import StackFacts
from stackcheck.redact import redact, strip_controls
from stackcheck.report.files import read_bounded, write_atomic
from stackcheck.report.run import StackRun

VERSION = 1
KEY_FILE = ".stackcheck-key"
KEY_HEX = 64  # 32 random bytes
# A baseline larger than this is not read; what is written stays far under it.
READ_MAX = 2**20
# What one service may hold: text fields, mounts, environment names.
TEXT_MAX = 512
MOUNTS_MAX = 100
ENV_MAX = 300
SERVICES_MAX = 1000
# A baseline saved later than this after the run's own clock is refused.
CLOCK_SKEW = timedelta(minutes=1)
# Free space is reported when it moved by at least this share of the filesystem.
FREE_SPACE_SHARE = 0.05
# The variables named in one line; the rest are counted.
NAMES_SHOWN = 8


# ------------------------------------------------------------------ the key


def env_key(reports: Path) -> tuple[bytes | None, str | None]:
    """The reports directory's digest key, created if missing: (key, None) or (None, why)."""
    path = reports / KEY_FILE
    try:
        return _read_key(path), None
    except FileNotFoundError:
        pass
    except (OSError, ValueError, Unusable) as exc:
        return None, f"key file {path} is unusable ({exc})"
    try:
        reports.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=reports)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(os.urandom(KEY_HEX // 2).hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            # link, not rename: of two runs creating it at once, the first one's stays.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        return _read_key(path), None
    except (OSError, ValueError, Unusable) as exc:
        return None, f"no key file {path} ({getattr(exc, 'strerror', None) or exc})"


_KEY = pytest.StashKey[tuple[bytes | None, str | None]]()


def reports_dir(config: pytest.Config) -> Path:
    """--reports-dir, relative to where pytest was started."""
    return Path(config.invocation_params.dir, str(config.getoption("reports_dir")))


def key_for(config: pytest.Config) -> bytes | None:
    """The run's digest key (read once per process): ``env_key`` of its reports directory."""
    if _KEY not in config.stash:
        if config.getoption("collectonly", False):  # writes nothing: no key made
            config.stash[_KEY] = (None, "--collect-only")
        else:
            config.stash[_KEY] = env_key(reports_dir(config))
    return config.stash[_KEY][0]


def key_problem(config: pytest.Config) -> str | None:
    """Why this process has no digest key, if it has none."""
    return config.stash[_KEY][1] if _KEY in config.stash else None


def _read_key(path: Path) -> bytes:
    data = _read(path, KEY_HEX + 2)
    if data is None:
        raise FileNotFoundError(path)
    mode = os.stat(path, follow_symlinks=False).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"mode {stat.S_IMODE(mode):o}: only its owner may read it (chmod 600)")
    text = data.decode("ascii", "replace").strip()
    if len(text) != KEY_HEX:
        raise ValueError("not a key")
    return bytes.fromhex(text)  # ValueError if not hex


# ------------------------------------------------------- what a run observed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:TEXT_MAX]


def observe(ref: CheckRef, facts: StackFacts | None, secrets: list[str]) -> dict[str, Any]:
    """What one check's report carries of its service for the baseline: builtins only.

    Known secrets are masked in every text, the environment's digests aside:
    they are not the values, and a masked digest would read as a change.
    """
    if facts is None:
        return {}
    name = ref.service
    seen: dict[str, Any] = {}
    container = facts.containers.get(name)
    if container is not None and not container.blind and not container.found:
        seen["container_missing"] = True  # seen to be gone, not merely unseen
    elif container is not None and not container.blind:
        seen["container"] = redact(
            {
                "id": _text(container.id),
                "name": _text(container.name),
                "state": _text(container.state),
                "image": _text(container.image),
                "image_id": _text(container.image_id),
                "created_at": _text(container.created_at),
                "started_at": _text(container.started_at),
                "finished_at": _text(container.finished_at),
                "restart_count": container.restart_count,
                "config_hash": _text(container.config_hash),
                "mem_limit": container.mem_limit,
                "cpu_limit": container.cpu_limit,
                "mounts": sorted(
                    _text(
                        f"{m.get('Type', '')} {m.get('Name') or m.get('Source', '')} -> "
                        f"{m.get('Destination', '')}"
                    )
                    or ""
                    for m in container.mounts[:MOUNTS_MAX]
                ),
            },
            secrets,
        )
        seen["container"]["env_key_id"] = container.env_key_id
        seen["container"]["env"] = dict(list(container.env_digests.items())[:ENV_MAX])
    pg = facts.pg.get(name)
    if pg is not None and not pg.blind and pg.max_connections is not None:
        seen["pg"] = {
            "max_connections": pg.max_connections,
            "server_version": _text(pg.server_version) or "",
        }
    datafs = facts.datafs.get(name)
    if datafs is not None and not datafs.blind and not datafs.error and datafs.size_kb:
        seen["datafs"] = redact(
            {"path": _text(datafs.path), "size_kb": datafs.size_kb, "avail_kb": datafs.avail_kb},
            secrets,
        )
    return {name: seen} if seen else {}


def merge(payloads: list[Any]) -> dict[str, dict[str, Any]]:
    """The services' observations, from every check report of one stack."""
    services: dict[str, dict[str, Any]] = {}
    for payload in payloads:
        observed = payload.get("observed") if isinstance(payload, dict) else None
        if not isinstance(observed, dict):
            continue
        for service, seen in observed.items():
            if isinstance(service, str) and _valid_service(seen):
                services.setdefault(service, {}).update(seen)
    return services


# ------------------------------------------------------------- the file


@dataclass
class Baseline:
    saved_at: datetime
    services: dict[str, dict[str, Any]]


class Unusable(Exception):
    """The baseline file exists but cannot be used; the message says why, in a few words."""


def _read(path: Path, limit: int) -> bytes | None:
    """A file's bytes, at most ``limit``; None if there is none. No link, no blocking."""
    return read_bounded(path, limit, Unusable, f"larger than {limit} bytes")


def _str(value: Any, nullable: bool = True) -> bool:
    return (value is None and nullable) or (isinstance(value, str) and len(value) <= TEXT_MAX)


def _count(value: Any, nullable: bool = False) -> bool:
    if value is None:
        return nullable
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


_CONTAINER_TEXTS = (
    *("id", "name", "state", "image", "image_id", "created_at", "started_at"),
    *("finished_at", "config_hash", "env_key_id"),
)


def _valid_container(found: Any) -> bool:
    if not isinstance(found, dict):
        return False
    cpu = found.get("cpu_limit")
    mounts, env = found.get("mounts"), found.get("env")
    return (
        all(_str(found.get(k)) for k in _CONTAINER_TEXTS)
        and _count(found.get("restart_count"))
        and _count(found.get("mem_limit"))
        and (cpu is None or (isinstance(cpu, int | float) and not isinstance(cpu, bool)))
        and isinstance(mounts, list)
        and len(mounts) <= MOUNTS_MAX
        and all(_str(m, nullable=False) for m in mounts)
        and isinstance(env, dict)
        and len(env) <= ENV_MAX
        and all(_str(k, False) and _str(v, False) for k, v in env.items())
    )


def _valid_service(seen: Any) -> bool:
    if not isinstance(seen, dict) or not set(seen) <= {
        "container",
        "container_missing",
        "pg",
        "datafs",
    }:
        return False
    if seen.get("container_missing", True) is not True:
        return False
    if "container" in seen and not _valid_container(seen["container"]):
        return False
    pg = seen.get("pg")
    if pg is not None and not (
        isinstance(pg, dict)
        and _count(pg.get("max_connections"))
        and _str(pg.get("server_version"), False)
    ):
        return False
    fs = seen.get("datafs")
    return fs is None or (
        isinstance(fs, dict)
        and _str(fs.get("path"))
        and _count(fs.get("size_kb"))
        and _count(fs.get("avail_kb"))
    )


def _parse(data: bytes, now: datetime) -> Baseline:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise Unusable("not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise Unusable(f"not a version {VERSION} baseline")
    try:
        saved = datetime.fromisoformat(doc["saved_at"])
    except (KeyError, TypeError, ValueError):
        raise Unusable("saved_at is not an ISO 8601 time") from None
    if saved.tzinfo is None or saved.utcoffset() is None:
        raise Unusable("saved_at has no time zone")
    try:
        saved = saved.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Unusable("saved_at is out of range") from None
    if saved > now + CLOCK_SKEW:
        raise Unusable(f"saved_at {saved.isoformat()} is in the future")
    services = doc.get("services")
    if not isinstance(services, dict) or len(services) > SERVICES_MAX:
        raise Unusable("services is not an object of services")
    for name, seen in services.items():
        if len(name) > TEXT_MAX or not _valid_service(seen):
            raise Unusable("a service's record is not of the expected shape")
    return Baseline(saved, services)


def load(path: Path, now: datetime) -> Baseline | None:
    """The stack's baseline; None if there is none; Unusable if there is one it cannot use."""
    data = _read(path, READ_MAX)
    return None if data is None else _parse(data, now)


def read(path: Path, now: datetime, warn: Callable[[str], None]) -> Baseline | None:
    """``load``, but an unusable file is one line to ``warn`` and no baseline."""
    try:
        return load(path, now)
    except Unusable as exc:
        warn(f"baseline {path} was unusable ({exc}): ignored; the next healthy run replaces it")
        return None


def save(path: Path, baseline: Baseline) -> None:
    doc = {
        "version": VERSION,
        "saved_at": baseline.saved_at.isoformat(),
        "services": baseline.services,
    }
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------- the diff


@dataclass(frozen=True)
class Change:
    service: str
    what: str  # "image changed", "restarted", ...
    detail: str = ""  # "app:1.4.2 → app:1.5.0"
    at: datetime | None = None  # when it happened, if the facts say

    def line(self, now: datetime) -> str:
        when = f" {ago(self.at, now)}" if self.at is not None else ""
        text = f"{self.service} {self.what}{when}" + (f": {self.detail}" if self.detail else "")
        return strip_controls(text).replace("\n", " ")

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "service": strip_controls(self.service),
            "what": strip_controls(self.what),
            "detail": strip_controls(self.detail),
            "at": self.at.isoformat() if self.at else None,
            "ago_s": round(max((now - self.at).total_seconds(), 0.0), 1) if self.at else None,
            "line": self.line(now),
        }


def ago(at: datetime, now: datetime) -> str:
    seconds = (now - at).total_seconds()
    if seconds < 60:
        return "just now" if seconds < 1 else f"{int(seconds)} s ago"
    minutes = seconds / 60
    if minutes < 90:
        return f"{int(minutes)} min ago"
    hours = minutes / 60
    return f"{int(hours)} h ago" if hours < 48 else f"{int(hours / 24)} d ago"


def docker_time(value: Any) -> datetime | None:
    """A Docker timestamp (RFC 3339, nanoseconds); None for none or the zero time."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if "." in text:  # Python reads at most microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}" if digits else head
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    if found.tzinfo is None or found.year < 2000:
        return None
    return found.astimezone(UTC)


def _mib(value: int) -> str:
    if not value:
        return "unlimited"
    mib = value / 2**20
    return f"{mib:.0f} MiB" if mib == int(mib) else f"{mib:.1f} MiB"


def _size(kb: int) -> str:
    if kb >= 1024 * 1024:
        return f"{kb / 1024 / 1024:.1f} GiB"
    return f"{kb / 1024:.1f} MiB"


def _cores(value: Any) -> str:
    return "unlimited" if not value else f"{value:g} cores"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _names(names: list[str], verb: str) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return f"{shown}{more} {verb}"


def _env(service: str, old: dict[str, Any], new: dict[str, Any], at: Any) -> list[Change]:
    before, after = old.get("env") or {}, new.get("env") or {}
    if not before or not after or old.get("env_key_id") != new.get("env_key_id"):
        return []  # not digested, or under another key: nothing to compare
    if before.get("") == after.get("") and before == after:
        return []
    changed = sorted(k for k in before.keys() & after.keys() if k and before[k] != after[k])
    added = sorted(k for k in after.keys() - before.keys() if k)
    removed = sorted(k for k in before.keys() - after.keys() if k)
    parts = [
        _names(names, verb)
        for names, verb in ((changed, "changed"), (added, "added"), (removed, "removed"))
        if names
    ]
    detail = "; ".join(parts) or "a variable beyond the first ones changed"
    return [Change(service, "environment changed", detail + " (values not shown)", at)]


def _container(service: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    recreated = old.get("id") != new.get("id")
    created = docker_time(new.get("created_at"))
    # A new container's configuration dates from its creation; an old one's
    # limits may be changed in place (docker update), at a time nobody records.
    at = created if recreated else None
    if old.get("image_id") != new.get("image_id"):
        was, now = str(old.get("image") or "?"), str(new.get("image") or "?")
        if was == now:
            was += f" ({_short(str(old.get('image_id') or ''))})"
            now += f" ({_short(str(new.get('image_id') or ''))})"
        changes.append(Change(service, "image changed", f"{was} → {now}", at))
    if old.get("mem_limit") != new.get("mem_limit"):
        detail = f"{_mib(old.get('mem_limit') or 0)} → {_mib(new.get('mem_limit') or 0)}"
        changes.append(Change(service, "memory limit changed", detail, at))
    if old.get("cpu_limit") != new.get("cpu_limit"):
        detail = f"{_cores(old.get('cpu_limit'))} → {_cores(new.get('cpu_limit'))}"
        changes.append(Change(service, "CPU limit changed", detail, at))
    changes += _env(service, old, new, at)
    was_mounts, now_mounts = set(old.get("mounts") or []), set(new.get("mounts") or [])
    if was_mounts != now_mounts:
        parts = [f"+ {m}" for m in sorted(now_mounts - was_mounts)]
        parts += [f"- {m}" for m in sorted(was_mounts - now_mounts)]
        changes.append(Change(service, "mounts changed", "; ".join(parts), at))
    if recreated:
        if not changes:
            what = (
                "recreated from a changed compose configuration"
                if old.get("config_hash") != new.get("config_hash")
                else "recreated (same image and configuration)"
            )
            changes.append(Change(service, what, "", created))
        count = new.get("restart_count") or 0
        if count:
            detail = f"{count} time{'' if count == 1 else 's'} since it was created"
            changes.append(Change(service, "restarted", detail, docker_time(new.get("started_at"))))
    else:
        started = docker_time(new.get("started_at"))
        was_count, count = old.get("restart_count") or 0, new.get("restart_count") or 0
        if count > was_count:
            more = count - was_count
            changes.append(
                Change(service, "restarted", f"{more} time{'' if more == 1 else 's'}", started)
            )
        elif old.get("started_at") != new.get("started_at"):
            changes.append(Change(service, "restarted", "", started))
    if old.get("state") == "running" and new.get("state") not in ("running", None):
        stopped = docker_time(new.get("finished_at"))
        changes.append(Change(service, f"stopped (now {new.get('state')})", "", stopped))
    return changes


def _restart_time(old: dict[str, Any], new: dict[str, Any]) -> datetime | None:
    """When the service's container last started, if after the baseline: a setting that
    only a restart applies (max_connections) dates from then."""
    was, now = old.get("container") or {}, new.get("container") or {}
    if was and now and was.get("started_at") != now.get("started_at"):
        return docker_time(now.get("started_at"))
    return None


def _service(service: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    was, now = old.get("container"), new.get("container")
    if was and new.get("container_missing"):
        changes.append(Change(service, "container gone", f"was {was.get('name') or '?'}"))
    elif now and not was:
        created = docker_time(now.get("created_at"))
        changes.append(Change(service, "container appeared", str(now.get("name") or ""), created))
    elif was and now:
        changes += _container(service, was, now)
    restarted = _restart_time(old, new)
    pg_was, pg_now = old.get("pg"), new.get("pg")
    if pg_was and pg_now:
        for key, what in (
            ("max_connections", "PostgreSQL max_connections changed"),
            ("server_version", "PostgreSQL server version changed"),
        ):
            if pg_was.get(key) != pg_now.get(key):
                detail = f"{pg_was.get(key)} → {pg_now.get(key)}"
                changes.append(Change(service, what, detail, restarted))
    fs_was, fs_now = old.get("datafs"), new.get("datafs")
    if fs_was and fs_now:
        size, avail = fs_now["size_kb"], fs_now["avail_kb"]
        if fs_was["size_kb"] != size:
            detail = f"{_size(fs_was['size_kb'])} → {_size(size)}"
            changes.append(Change(service, "data filesystem size changed", detail))
        moved = avail - fs_was["avail_kb"]
        if abs(moved) >= FREE_SPACE_SHARE * max(size, 1):
            verb = "fell" if moved < 0 else "rose"
            detail = f"{_size(fs_was['avail_kb'])} → {_size(avail)} free of {_size(size)}"
            changes.append(Change(service, f"data filesystem free space {verb}", detail))
    return changes


def diff(old: Baseline, new: Mapping[str, dict[str, Any]]) -> list[Change]:
    """What differs between the baseline and this run's observations, newest first;
    changes whose time is not known come last. A service this run did not
    observe (a partial run, a blind probe) is not compared: unseen is not gone."""
    changes: list[Change] = []
    for service in sorted(new):
        if service in old.services:
            changes += _service(service, old.services[service], new[service])
        elif new[service].get("container"):
            found = new[service]["container"]
            created = docker_time(found.get("created_at"))
            changes.append(Change(service, "is new", str(found.get("name") or ""), created))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(changes, key=lambda c: (c.at is None, -(c.at or epoch).timestamp()))


@dataclass
class Comparison:
    """One stack's comparison with its baseline, for every output."""

    baseline_at: datetime | None  # None: no usable baseline to compare with
    changes: list[Change]
    now: datetime
    observed: dict[str, dict[str, Any]]  # what this run saw, by service

    def heading(self) -> str:
        if self.baseline_at is None:
            return "What changed: unknown, no baseline of a healthy run of all the checks"
        return (
            f"WHAT CHANGED since the last healthy run ({ago(self.baseline_at, self.now)}, "
            f"{self.baseline_at:%Y-%m-%d %H:%M:%S %Z})"
        )

    def lines(self) -> list[str]:
        return [c.line(self.now) for c in self.changes]


def compare(
    path: Path, stack_run: StackRun, now: datetime, warn: Callable[[str], None]
) -> Comparison:
    """Compare one stack's run with the baseline in ``path`` (never raises)."""
    observed = merge([row.result.payload for row in stack_run.rows])
    previous = read(path, now, warn)
    changes = diff(previous, observed) if previous is not None else []
    return Comparison(previous.saved_at if previous else None, changes, now, observed)
