"""Memory and CPU of a container from its own cgroup counters, read in one exec.

``docker stats`` waits for the engine's next sampling tick and needs two of
them for a CPU figure: 1-2 s a call. The same counters are files in the
container's cgroup, which the container itself can read (its /sys/fs/cgroup
is its own cgroup: docker mounts it so on cgroup v1, and a private cgroup
namespace does on v2). One ``exec`` of ``SCRIPT`` reads them, waits
``INTERVAL_S`` and reads the CPU counters again: about 0.25 s, through the
engine, so it works for a local and a remote engine alike.

The numbers keep ``docker stats``' semantics (docker's CLI, ``calculateMem
UsageUnixNoCache`` and ``calculateCPUPercentUnix``):

- memory in use = usage less the inactive page cache (reclaimable, not
  pressure): v1 ``memory.usage_in_bytes`` - ``total_inactive_file`` of
  ``memory.stat``; v2 ``memory.current`` - ``inactive_file``; subtracted only
  when smaller than the usage, as docker does.
- the limit: v1 ``memory.limit_in_bytes``, v2 ``memory.max`` (``max``: none),
  at most the host's memory (``MemTotal`` of /proc/meminfo), as the daemon caps it.
- CPU = the container's CPU time over the host's CPU time between the two
  samples, times the host's online CPUs, x 100: a share of one core. The host's
  time is the first seven fields of /proc/stat's ``cpu`` line (USER_HZ ticks),
  the online CPUs its ``cpuN`` lines, as the daemon reads them. The container's
  time: v1 ``cpuacct.usage`` (ns), v2 ``usage_usec`` of ``cpu.stat`` (µs).
- the CPU limit (kept beside, in cores): v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` (-1: none), v2 ``cpu.max`` (``max PERIOD``: none).

The script uses only the shell's builtins and ``sleep``: no cat, no grep. Its
output is parsed strictly (``parse``): known keys, digits only, a size cap. A
line that does not fit means the reading cannot be trusted: ``OutputError``,
and the stats check could not check. The container's /proc is assumed to be
the host's (no lxcfs), as it is for docker's own containers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from stackcheck.redact import strip_controls

# Seconds between the two CPU samples: 40 ticks of /proc/stat on 2 CPUs, so
# the CPU figure is within ±5 % of itself; docker stats' window is 1 s.
INTERVAL_S = 0.2
# The script's whole output is a few hundred bytes; more is not ours.
OUTPUT_CAP = 4096
USER_HZ = 100  # /proc/stat's unit, fixed for userspace on Linux

# $1 = seconds between the two CPU samples, $2 = the cgroup root, $3 = /proc
# (the roots are arguments so that unit tests can run the script on a tree of
# their own). Lines: "key value".
SCRIPT = r"""
i="$1"; c="$2"; p="$3"
say() { echo "$1 $2"; }
get() { v=; if [ -r "$2" ]; then read -r v < "$2"; fi; say "$1" "${v:-?}"; }
field() {
  v=; if [ -r "$2" ]; then while read -r k x; do [ "$k" = "$3" ] && v="$x"; done < "$2"; fi
  say "$1" "${v:-?}"
}
ticks() { read -r k a b d e f g h x < "$p/stat"; say "system$1" "$a $b $d $e $f $g $h"; }
if [ -r "$c/memory/memory.usage_in_bytes" ]; then
  say cgroup v1
  get mem_usage "$c/memory/memory.usage_in_bytes"
  get mem_limit "$c/memory/memory.limit_in_bytes"
  field inactive_file "$c/memory/memory.stat" total_inactive_file
  u=; q=
  for d in "$c/cpuacct" "$c/cpu,cpuacct" "$c/cpuacct,cpu" "$c/cpu"; do
    if [ -z "$u" ] && [ -r "$d/cpuacct.usage" ]; then u="$d/cpuacct.usage"; fi
  done
  for d in "$c/cpu" "$c/cpu,cpuacct" "$c/cpuacct,cpu"; do
    if [ -z "$q" ] && [ -r "$d/cpu.cfs_quota_us" ]; then q="$d"; fi
  done
  get cpu_quota "$q/cpu.cfs_quota_us"
  get cpu_period "$q/cpu.cfs_period_us"
  usage() { get "cpu_usage$1" "$u"; }
elif [ -r "$c/memory.current" ]; then
  say cgroup v2
  get mem_usage "$c/memory.current"
  get mem_limit "$c/memory.max"
  field inactive_file "$c/memory.stat" inactive_file
  get cpu_max "$c/cpu.max"
  usage() { field "cpu_usage$1" "$c/cpu.stat" usage_usec; }
else
  say cgroup none
  exit 0
fi
field host_memory "$p/meminfo" MemTotal:
n=0
while read -r k x; do case "$k" in cpu[0-9]*) n=$((n+1));; esac; done < "$p/stat"
say online_cpus "$n"
usage 1; ticks 1
if ! { sleep "$i" || sleep 1; } 2>/dev/null; then say end no-sleep; exit 0; fi
usage 2; ticks 2
say end ok
"""

_NUMBER = r"[0-9]{1,20}"
_UNREADABLE = "?"
# Each key's value: the pattern it must match whole.
_COMMON = {
    "cgroup": r"v1|v2",
    "mem_usage": _NUMBER,
    "mem_limit": _NUMBER,
    "inactive_file": _NUMBER + r"|\?",
    "host_memory": _NUMBER + r" kB|\?",
    "online_cpus": _NUMBER,
    "cpu_usage1": _NUMBER,
    "cpu_usage2": _NUMBER,
    "system1": rf"{_NUMBER}(?: {_NUMBER}){{6}}",
    "system2": rf"{_NUMBER}(?: {_NUMBER}){{6}}",
    "end": r"ok|no-sleep",
}
KEYS = {
    "v1": {**_COMMON, "cpu_quota": r"-?[0-9]{1,20}|\?", "cpu_period": _NUMBER + r"|\?"},
    "v2": {
        **_COMMON,
        "mem_limit": _NUMBER + r"|max",
        "cpu_max": rf"(?:{_NUMBER}|max) {_NUMBER}|\?",
    },
}


CGROUP_ROOT = "/sys/fs/cgroup"
PROC_ROOT = "/proc"


def argv(interval_s: float = INTERVAL_S) -> list[str]:
    """The exec's argv: the script and its arguments, never a command line."""
    return ["sh", "-c", SCRIPT, "stackcheck", f"{interval_s:g}", CGROUP_ROOT, PROC_ROOT]


class OutputError(ValueError):
    """The script's output is not what it prints: the reading is not to be trusted."""


class CannotRead(Exception):
    """The container cannot give the reading (no cgroup counters of its own at
    /sys/fs/cgroup, as with a host cgroup namespace on cgroup v2; no ``sleep``):
    ask the engine instead. The message says why."""


@dataclass(frozen=True)
class Reading:
    """One run of ``SCRIPT``, in docker stats' terms."""

    version: str  # "v1" or "v2"
    mem_usage: int  # bytes, less the inactive page cache
    mem_limit: int  # bytes, at most the host's memory
    cpu_percent: float  # of one core
    online_cpus: int
    cpu_limit: float | None  # cores; None: no quota


def _shown(line: str) -> str:
    text = strip_controls(line).strip()
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def parse(output: bytes) -> Reading:
    """The reading in ``output``; ``NoCgroup`` or ``OutputError`` (with the reason) if none."""
    if len(output) > OUTPUT_CAP:
        raise OutputError(f"{len(output)} bytes of output, more than the {OUTPUT_CAP} expected")
    text = output.decode("ascii", errors="replace")
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" ")
        if not sep:
            raise OutputError(f"unexpected line {_shown(line)}")
        if key in values:
            raise OutputError(f"{key} given twice")
        if key == "cgroup" and value == "none" and not values:
            raise CannotRead("no cgroup counters of its own at /sys/fs/cgroup")
        if key == "end" and value == "no-sleep":
            raise CannotRead("no sleep in the image for the second CPU sample")
        allowed = KEYS.get(values.get("cgroup", ""), _COMMON)
        pattern = allowed.get(key)
        if pattern is None or not re.fullmatch(pattern, value):
            raise OutputError(f"unexpected line {_shown(line)}")
        values[key] = value
    version = values.get("cgroup")
    if version not in KEYS:
        raise OutputError("no cgroup version in the output")
    missing = [key for key in KEYS[version] if key not in values]
    if missing:
        raise OutputError(f"incomplete output (no {', '.join(missing)})")
    return _reading(version, values)


def _reading(version: str, values: dict[str, str]) -> Reading:
    usage = int(values["mem_usage"])
    inactive = 0 if values["inactive_file"] == _UNREADABLE else int(values["inactive_file"])
    if inactive < usage:
        usage -= inactive
    host = values["host_memory"]
    host_bytes = None if host == _UNREADABLE else int(host.split()[0]) * 1024
    raw_limit = values["mem_limit"]
    limit = None if raw_limit == "max" else int(raw_limit)
    if host_bytes is not None:
        limit = host_bytes if limit is None else min(limit, host_bytes)
    if not limit:
        raise OutputError("no memory limit and the host's memory unreadable")

    online = int(values["online_cpus"])
    if online < 1:
        raise OutputError("no online CPU in /proc/stat")
    scale = 1 if version == "v1" else 1000  # v2 counts µs
    cpu_delta = (int(values["cpu_usage2"]) - int(values["cpu_usage1"])) * scale
    ticks = [sum(int(n) for n in values[f"system{i}"].split()) for i in (1, 2)]
    system_delta = (ticks[1] - ticks[0]) * 10**9 // USER_HZ
    if cpu_delta < 0 or system_delta <= 0:
        raise OutputError(
            f"the CPU counters did not advance (container {cpu_delta} ns, host {system_delta} ns)"
        )
    return Reading(
        version=version,
        mem_usage=usage,
        mem_limit=limit,
        cpu_percent=cpu_delta / system_delta * online * 100.0,
        online_cpus=online,
        cpu_limit=_cpu_limit(version, values),
    )


def _cpu_limit(version: str, values: dict[str, str]) -> float | None:
    if version == "v1":
        quota, period = values["cpu_quota"], values["cpu_period"]
        if _UNREADABLE in (quota, period) or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    quota, _, period = values["cpu_max"].partition(" ")
    if quota in ("max", _UNREADABLE) or int(period) <= 0:
        return None
    return int(quota) / int(period)


# The same reading from the engine's host, without an exec. With a local
# engine the checker sees the container's cgroup in the host's /sys/fs/cgroup:
# ``read_on_host`` reads the files the script reads, as the script reads them,
# and prints what it prints, so ``parse`` and docker stats' arithmetic are
# shared (tests/unit/test_cgroup_stats.py holds the two outputs equal on the
# same trees). No process is started: the engine is spared one exec (create,
# start, inspect: about 50 ms of its CPU) a container, this machine a shell and
# a ``sleep``; a fleet of 32 stacks has 64 of them.
HOST_CGROUP_CAP = 64 * 1024  # /proc/PID/cgroup: a dozen short lines
# The v1 controllers the script reads, as /proc/PID/cgroup names them.
_V1_READ = frozenset({"memory", "cpu", "cpuacct"})
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_FILE_CAP = 64 * 1024  # a cgroup file or /proc/stat: far less


def host_paths(cgroup_file: str, container_id: str) -> dict[str, str] | None:
    """The container's cgroups as this machine mounts them, from ``/proc/PID/cgroup``
    of its main process: v1, controller directory -> path; v2, ``""`` -> path.

    None unless every path read names the container: a PID of another PID
    namespace (the checker in a container, a socket forwarded from another
    host), a process moved out of the container's cgroup, or a layout not
    known here, all leave the reading to the exec.
    """
    if not _CONTAINER_ID.fullmatch(container_id):
        return None
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in cgroup_file.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep or not hierarchy.isdigit():
            return None
        if hierarchy == "0" and not controllers:
            v2 = path
        elif _V1_READ & set(controllers.split(",")):
            v1[controllers] = path
    chosen = v1 if v1 else ({"": v2} if v2 is not None else {})
    if v1 and not {"memory"} <= {c for key in v1 for c in key.split(",")}:
        return None
    for path in chosen.values():
        parts = path.split("/")
        if not path.startswith("/") or ".." in parts or container_id not in parts[-1]:
            return None
    return chosen or None


def _lines(path: str) -> list[str] | None:
    """The file's lines, None if it cannot be read (the script's ``[ -r ]``)."""
    try:
        with open(path, "rb") as found:
            return found.read(_FILE_CAP).decode("ascii", errors="replace").splitlines()
    except OSError:
        return None


def _first(path: str) -> str:
    """The script's ``get``: the first line, trimmed; ``?`` if there is none."""
    lines = _lines(path)
    return lines[0].strip() if lines and lines[0].strip() else _UNREADABLE


def _field(path: str, key: str) -> str:
    """The script's ``field``: the rest of the last line whose first word is ``key``."""
    found = ""
    for line in _lines(path) or []:
        words = line.split(None, 1)
        if words and words[0] == key:
            found = words[1].strip() if len(words) > 1 else ""
    return found or _UNREADABLE


def read_on_host(
    paths: dict[str, str],
    interval_s: float = INTERVAL_S,
    root: str | None = None,
    proc: str | None = None,
) -> bytes:
    """What ``SCRIPT`` prints for the cgroup at ``paths`` (``host_paths``), read here.

    ``root`` and ``proc``: this machine's /sys/fs/cgroup and /proc (default
    ``CGROUP_ROOT``, ``PROC_ROOT``). Sleeps ``interval_s`` between the two CPU
    samples, in the calling thread.
    """
    root = CGROUP_ROOT if root is None else root
    proc = PROC_ROOT if proc is None else proc
    out: list[str] = []

    def say(key: str, value: str) -> None:
        out.append(f"{key} {value}")

    def ticks(n: int) -> None:
        lines = _lines(f"{proc}/stat") or [""]
        say(f"system{n}", " ".join(lines[0].split()[1:8]))

    if "" in paths:
        where = root + paths[""]
        if _lines(f"{where}/memory.current") is None:
            return b"cgroup none\n"
        say("cgroup", "v2")
        say("mem_usage", _first(f"{where}/memory.current"))
        say("mem_limit", _first(f"{where}/memory.max"))
        say("inactive_file", _field(f"{where}/memory.stat", "inactive_file"))
        say("cpu_max", _first(f"{where}/cpu.max"))

        def usage(n: int) -> None:
            say(f"cpu_usage{n}", _field(f"{where}/cpu.stat", "usage_usec"))

    else:
        dirs = {controllers: f"{root}/{controllers}{path}" for controllers, path in paths.items()}

        def having(controller: str, name: str) -> str:
            for controllers, where in dirs.items():
                if controller in controllers.split(",") and _lines(f"{where}/{name}") is not None:
                    return f"{where}/{name}"
            return f"/nonexistent/{name}"  # read as the script reads a missing file: "?"

        memory = having("memory", "memory.usage_in_bytes")
        if _lines(memory) is None:
            return b"cgroup none\n"
        where = memory.rsplit("/", 1)[0]
        say("cgroup", "v1")
        say("mem_usage", _first(memory))
        say("mem_limit", _first(f"{where}/memory.limit_in_bytes"))
        say("inactive_file", _field(f"{where}/memory.stat", "total_inactive_file"))
        quota = having("cpu", "cpu.cfs_quota_us")  # the period from the quota's directory
        say("cpu_quota", _first(quota))
        say("cpu_period", _first(quota.rsplit("/", 1)[0] + "/cpu.cfs_period_us"))
        accounting = having("cpuacct", "cpuacct.usage")

        def usage(n: int) -> None:
            say(f"cpu_usage{n}", _first(accounting))

    say("host_memory", _field(f"{proc}/meminfo", "MemTotal:"))
    cpus = [line for line in _lines(f"{proc}/stat") or [] if re.match(r"cpu[0-9]", line)]
    say("online_cpus", str(len(cpus)))
    usage(1)
    ticks(1)
    time.sleep(interval_s)
    usage(2)
    ticks(2)
    say("end", "ok")
    return ("\n".join(out) + "\n").encode()
