"""Facts about the Docker host itself, through testinfra: the engine's process, the
free disk where the engine keeps its data, the host's memory.

What the runbook's engineer checks on the host before blaming a container: is
the Docker daemon running at all, is the disk under /var/lib/docker full, is
the machine out of memory. testinfra's backends reach the host: ``local://``
when the engine is on this machine's socket, ``paramiko://`` over the very SSH
connection the engine's client uses when the engine is ``ssh://`` (logged in
with the same pinned host key: testinfra's own paramiko client would accept an
unknown key, so it is never used). An engine over ``tcp://`` offers no way onto
its host: the host checks do not apply there (``reachable``).

Everything runs in one probe thread under the run's deadline; a part that
cannot be read blinds only the check that reads it.
"""

from __future__ import annotations

import copy
import json
import shlex
import threading
from typing import Any
from urllib.parse import urlsplit

from stackcheck.config import Stack
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.docker_probe import chosen_engine, is_local, is_ssh
from stackcheck.probes.facts import HostFacts
from stackcheck.redact import strip_controls

DEFAULT_DATA_ROOT = "/var/lib/docker"
DAEMON_JSON = "/etc/docker/daemon.json"
ARGV_CAP = 200
TEXT_CAP = 64 * 1024
ENGINE = "host_engine_running"
DISK = "host_disk"
MEMORY = "host_memory"


def reachable(stack: Stack) -> bool:
    """Whether the host checks apply: the engine is local or behind ssh://."""
    return is_local(stack) or is_ssh(chosen_engine(stack))


def where(stack: Stack) -> str:
    """The host as evidence names it."""
    if is_local(stack):
        return "this machine"
    parts = urlsplit(str(chosen_engine(stack)))
    login = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{login}{parts.hostname}{port}"


def on_host(stack: Stack) -> str:
    """The prefix that runs a command on the host, for hints: empty locally, else ssh."""
    address = chosen_engine(stack)
    if address is None or not address.startswith("ssh://"):
        return ""
    parts = urlsplit(address)
    words = ["ssh"]
    if parts.port:
        words += ["-p", str(parts.port)]
    login = f"{parts.username}@" if parts.username else ""
    words += [f"{login}{parts.hostname}", "--"]
    return shlex.join(words) + " "


def _host(stack: Stack, deadline: Deadline) -> Any:
    """A testinfra host for the stack's engine host (local, or over the engine's SSH)."""
    import testinfra  # only a run with host checks pays for it

    if is_local(stack):
        return testinfra.get_host("local://")
    address = chosen_engine(stack)
    from testinfra.backend.paramiko import ParamikoBackend
    from testinfra.host import Host

    from stackcheck.probes import sshengine

    connect_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    # Logged in even when the engine behind the login is down: that is a host fact.
    engine = sshengine.ENGINES.login(str(address), stack.ssh, deadline, connect_s)
    target = engine.target

    class Pinned(ParamikoBackend):  # type: ignore[misc]
        """testinfra's paramiko backend on the engine's own, pinned connection."""

        @property
        def client(self) -> Any:
            # No reconnecting with testinfra's own client (it would learn any host
            # key): a dropped connection fails the command, which blinds its check.
            return engine.client

        @client.deleter
        def client(self) -> None:
            # testinfra drops a lost client to log in anew and run the command
            # again: here the retry meets the same lost connection and fails
            # with paramiko's own words ("SSH session not active"), not with
            # "property 'client' of 'Pinned' object has no deleter".
            pass

    return Host(Pinned(f"paramiko://{target.user}@{target.host}:{target.port}"))


def host_facts(stack: Stack, deadline: Deadline) -> HostFacts:
    facts = HostFacts(host=where(stack))
    try:
        host = _host(stack, deadline)
    except Exception as exc:  # the way in failed: every host check is blind
        facts.blind = f"cannot reach the Docker host {facts.host}: {_said(exc)}"
        return facts
    _engine(host, facts)
    _disk(host, facts)
    _memory(host, facts)
    return facts


class HostReadings:
    """One reading of each Docker host per round, shared by every stack on it.

    A fleet of stacks on one engine has one host: its facts are read once
    (one login, one ``df``, one meminfo), not once per stack. The stacks that
    come second wait for the first reading within their own deadline.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, tuple[threading.Event, list[HostFacts]]] = {}

    def read(self, stack: Stack, deadline: Deadline) -> HostFacts:
        # The login belongs to the key: the same address with another key file
        # may be let in where this one is not.
        key = f"{chosen_engine(stack)}\n{stack.ssh!r}"
        with self._lock:
            reading = self._readings.get(key)
            first = reading is None
            if reading is None:
                reading = self._readings[key] = (threading.Event(), [])
        done, found = reading
        if first:
            try:
                found.append(host_facts(stack, deadline))
            finally:
                done.set()
        elif not done.wait(deadline.left(floor=0.0)):
            facts = HostFacts(host=where(stack))
            facts.blind = (
                f"the Docker host {facts.host}: no answer within the "
                f"{deadline.seconds:g} s probe deadline"
            )
            return facts
        return copy.copy(found[0])


def _said(exc: BaseException) -> str:
    return strip_controls(str(exc) or type(exc).__name__)[:300]


def _engine(host: Any, facts: HostFacts) -> None:
    try:
        processes = host.process.filter(comm="dockerd")
        facts.engine_processes = [strip_controls(str(p.args))[:ARGV_CAP] for p in processes]
    except Exception as exc:
        facts.blind_for[ENGINE] = f"cannot list processes on {facts.host} (ps): {_said(exc)}"
        return
    root, source = _data_root(host, facts.engine_processes)
    facts.data_root, facts.data_root_from = root, source


def _data_root(host: Any, argvs: list[str]) -> tuple[str, str]:
    """Where the engine keeps its data: its --data-root, daemon.json, else the default."""
    for argv in argvs:
        words = argv.split()
        for i, word in enumerate(words):
            if word.startswith("--data-root="):
                return word.split("=", 1)[1], "dockerd --data-root"
            if word in ("--data-root", "-g", "--graph") and i + 1 < len(words):
                return words[i + 1], f"dockerd {word}"
    try:
        config = host.file(DAEMON_JSON)
        if config.is_file:
            data = json.loads(config.content_string[:TEXT_CAP])
            root = data.get("data-root") if isinstance(data, dict) else None
            if isinstance(root, str) and root.startswith("/"):
                return root, DAEMON_JSON
    except Exception:  # unreadable or not JSON: the engine's own default then
        pass
    return DEFAULT_DATA_ROOT, "default"


def _disk(host: Any, facts: HostFacts) -> None:
    path = facts.data_root
    try:
        # testinfra quotes each argument; `--` keeps a path from being an option.
        result = host.run("df -Pk -- %s", path)
    except Exception as exc:
        facts.blind_for[DISK] = f"cannot run df on {facts.host}: {_said(exc)}"
        return
    lines = result.stdout.strip().splitlines()
    # POSIX df -P: a header, then one line per filesystem.
    posix = result.rc == 0 and len(lines) == 2 and lines[0].startswith("Filesystem")
    fields = lines[-1].split() if posix else []
    if len(fields) < 6 or not all(f.isdigit() for f in fields[1:4]):
        said = strip_controls(" ".join((result.stderr or result.stdout).split()))[:200]
        facts.blind_for[DISK] = (
            f"cannot measure {path} on {facts.host} with df (exit {result.rc}: {said})"
        )
        return
    facts.disk_size_kb, facts.disk_avail_kb = int(fields[1]), int(fields[3])
    facts.disk_mount = strip_controls(fields[-1])[:ARGV_CAP]


def _memory(host: Any, facts: HostFacts) -> None:
    try:
        text = host.file("/proc/meminfo").content_string[:TEXT_CAP]
    except Exception as exc:
        facts.blind_for[MEMORY] = f"cannot read /proc/meminfo on {facts.host}: {_said(exc)}"
        return
    values = parse_meminfo(text)
    if "MemTotal" not in values or "MemAvailable" not in values:
        facts.blind_for[MEMORY] = (
            f"/proc/meminfo on {facts.host} has no MemTotal/MemAvailable (kernel older than 3.14?)"
        )
        return
    facts.mem_total_kb, facts.mem_available_kb = values["MemTotal"], values["MemAvailable"]


def parse_meminfo(text: str) -> dict[str, int]:
    """``Key:   123 kB`` lines; anything else is left out."""
    found = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            found[key.strip()] = int(words[0])
    return found
