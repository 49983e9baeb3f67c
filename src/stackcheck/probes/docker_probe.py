"""Container facts from the Docker engine: state, restarts, stats, logs.

Containers are found by their compose labels, never by name, so any compose
project (v1 or v2) with any service names works.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import shlex
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stackcheck.config import LogRules, Stack
from stackcheck.probes import cgroup, logmatch
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.facts import ContainerFacts, DataFsFacts, LogFacts, StatsFacts
from stackcheck.probes.network import file_refusal
from stackcheck.probes.streams import close_stream, keep_exec_output
from stackcheck.redact import redact_text, strip_controls

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

# The docker SDK (docker, requests, urllib3: about 80 ms of start-up) is
# imported by the functions that talk to the engine, so a run that has not
# reached the engine yet (start-up, collection, --collect-only) does not pay it.

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
# Replicas of one service checked one by one, at most (a bound on test items
# against a hostile or runaway scale); the ones beyond are named in a warning.
MAX_REPLICAS = 100
LOG_LINE_CAP = 240
LOG_MATCH_CAP = 10
# What one logs probe reads of a container's output, at most (see read_newest_logs).
LOG_READ_BYTES = 1 << 20
LOG_CHUNK_BYTES = 64 * 1024
# A cut line's excerpt starts this many characters before its bad word.
LOG_EXCERPT_LEAD = 40
# Matching may use this share of the probe time left when it starts (the rest
# is the other probes' margin), or this many seconds when there is no deadline.
LOG_MATCH_SHARE = 0.5
LOG_MATCH_BUDGET_S = 2.5


def chosen_engine(stack: Stack) -> str | None:
    """The engine the stack file or DOCKER_HOST names; None for the default local one."""
    return stack.docker_host or os.environ.get("DOCKER_HOST")


def engine_address(stack: Stack) -> str:
    return chosen_engine(stack) or "unix:///var/run/docker.sock"


def is_ssh(address: str | None) -> bool:
    return bool(address) and str(address).lower().startswith("ssh://")


def describe_engine_error(stack: Stack, exc: BaseException) -> str:
    """One line an on-call engineer can act on, whatever docker-py raised."""
    own = _own_reason(exc)
    if own is not None:
        return own
    import docker.errors

    text = str(exc)
    where = redact_text(engine_address(stack), ())
    if "Permission denied" in text or isinstance(exc, PermissionError):
        return (
            f"permission denied on the Docker engine socket {where}: run as root "
            "or as a member of the docker group"
        )
    if isinstance(exc, docker.errors.TLSParameterError):
        return (
            f"TLS settings for the Docker engine at {where} are unusable ({text}): put "
            "ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH (default ~/.docker)"
        )
    if isinstance(exc, docker.errors.APIError):
        return f"Docker engine at {where} answered: {exc.explanation or text}"
    import ssl  # loaded by then: the engine's client uses it

    tls = next((e for e in _chain(exc) if isinstance(e, ssl.SSLError)), None)
    if tls is not None:
        said = getattr(tls, "verify_message", None) or tls.reason or type(tls).__name__
        return (
            f"TLS with the Docker engine at {where} failed ({strip_controls(str(said))[:160]}): "
            "DOCKER_CERT_PATH (default ~/.docker) needs the engine's CA as ca.pem and a "
            "client certificate that CA signed as cert.pem and key.pem"
        )
    reason = text.split("(Caused by")[0].strip().rstrip(":") or type(exc).__name__
    return (
        f"Docker engine unreachable at {where}: {reason}. To restore sight: point DOCKER_HOST "
        "(or the stack file's docker_host) at the stack's engine, check that "
        f"`docker -H {where} info` answers, and for ssh:// that the SSH login works"
    )


def _own_reason(exc: BaseException) -> str | None:
    """The one line of an ``EngineUnreachable`` anywhere in the exception's chain.

    Requests and urllib3 wrap what a connection raises (an SSH session the
    server refused, a lost connection) in their own errors.
    """
    ssh = sys.modules.get("stackcheck.probes.sshengine")
    if ssh is None:  # no ssh:// engine was used: there is none to find
        return None
    found = next((e for e in _chain(exc) if isinstance(e, ssh.EngineUnreachable)), None)
    return None if found is None else str(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps: causes, contexts, arguments, reasons."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__]
        stack += [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)


def client_kwargs(stack: Stack, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``docker.DockerClient`` arguments for a local or ``tcp://`` engine, as ``docker``
    reads them: the stack file's docker_host over DOCKER_HOST, and TLS from
    DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem; default
    ~/.docker) exactly as ``docker.from_env`` does."""
    import docker.utils

    env = dict(os.environ if environ is None else environ)
    if stack.docker_host:
        env["DOCKER_HOST"] = stack.docker_host
    kwargs: dict[str, Any] = docker.utils.kwargs_from_env(environment=env)
    return kwargs


def connect(stack: Stack, deadline: Deadline) -> docker.DockerClient:
    """The Docker client for the stack's engine, within the deadline.

    An ``ssh://`` engine is connected once per process and shared (see
    ``sshengine``); its failures raise ``EngineUnreachable`` with one line.
    """
    address = chosen_engine(stack)
    if is_ssh(address):
        from stackcheck.probes import sshengine

        default_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
        engine = sshengine.ENGINES.engine(str(address), stack.ssh, deadline, default_s)
        assert engine.docker is not None
        return engine.docker

    timeout = max(1, int(deadline.left()))
    client = _engine_client()(timeout=timeout, **client_kwargs(stack))
    return keep_exec_output(client)


@functools.cache
def _engine_client() -> type[docker.DockerClient]:
    """docker.DockerClient whose TLS engine is verified against DOCKER_CERT_PATH's ca.pem.

    requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from the environment win
    over a session's own CA file (requests issue 3829): where either is set, as
    on many company machines, the engine's certificate was checked against the
    system's CAs, and every engine check could not check ("self-signed
    certificate in certificate chain") while `docker` itself worked. The first
    request (the API version) is made in the constructor, so the class, not the
    instance, says so.
    """
    import docker

    class EngineAPI(docker.APIClient):  # type: ignore[misc]
        def merge_environment_settings(self, *args: Any) -> dict[str, Any]:
            settings: dict[str, Any] = super().merge_environment_settings(*args)
            if isinstance(self.verify, str):  # DOCKER_CERT_PATH's ca.pem
                settings["verify"] = self.verify
            return settings

    class EngineClient(docker.DockerClient):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.api = EngineAPI(*args, **kwargs)  # all DockerClient.__init__ does

    return EngineClient


def tunnel(stack: Stack, host: str, port: int, deadline: Deadline) -> Any:
    """A socket-like ``direct-tcpip`` channel to ``host:port`` as seen from an ``ssh://``
    engine's host, over the same SSH connection as the engine's API (no port published).

    Raises ``EngineUnreachable`` (one line) when the engine is not ``ssh://``, or
    SSH or its forwarding fails. Close the channel when done.
    """
    from stackcheck.probes import sshengine

    address = chosen_engine(stack)
    if not is_ssh(address):
        raise sshengine.EngineUnreachable(
            f"no SSH tunnel to {host}:{port}: the engine {engine_address(stack)} is not ssh://"
        )
    default_s = min(stack.timeouts.connect_s, stack.timeouts.probe_s)
    engine = sshengine.ENGINES.engine(str(address), stack.ssh, deadline, default_s)
    return engine.tunnel(host, port, max(0.05, min(default_s, deadline.left())))


def close_engines() -> None:
    """Close the process's SSH engine connections (at the end of a run)."""
    ssh = sys.modules.get("stackcheck.probes.sshengine")
    if ssh is not None:
        ssh.ENGINES.close()


# The order a service's containers are judged in. A check of the service as a
# whole reads the first, and so does a check of one replica among the containers
# that share its number: the one judged must be the live one, so a stale
# container left *created* (an interrupted `up`, a `create` by hand) or *exited*
# next to the running one never marks a healthy service as a root cause with an
# `up -d` fix. Among the dead ones, an exited container goes before a
# never-started one: its exit code and OOM flag are the evidence.
STATE_ORDER = {
    "running": 0,
    "restarting": 1,
    "paused": 1,
    "exited": 2,
    "dead": 2,
    "removing": 2,
    "created": 3,
}
UNKNOWN_STATE_RANK = 4


def judged_first(container: Container) -> tuple[int, str]:
    """Sort key: live states first, then by name so the choice is stable across runs."""
    return STATE_ORDER.get(container.status, UNKNOWN_STATE_RANK), container.name or ""


def find_containers(client: docker.DockerClient, stack: Stack) -> dict[str, list[Container]]:
    """The project's service containers by service label (one-off `run` containers left out),
    each service's list in the order of ``judged_first``."""
    found: dict[str, list[Container]] = {}
    containers = client.containers.list(
        all=True, filters={"label": f"{PROJECT_LABEL}={stack.compose_project}"}
    )
    for container in containers:
        labels = container.labels
        if labels.get("com.docker.compose.oneoff", "False") == "True":
            continue
        found.setdefault(labels.get(SERVICE_LABEL, ""), []).append(container)
    for group in found.values():
        group.sort(key=judged_first)
    return found


def replica_number(container: Container) -> int | None:
    """The container's compose number (``container-number`` label); None if absent or odd."""
    value = str((container.labels or {}).get(NUMBER_LABEL, ""))
    if value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    return None


def replicas_of(group: list[Container]) -> dict[int, Container]:
    """A service's containers by replica number, in number order.

    ``group`` is in ``judged_first`` order, so of two containers that share a
    number (a recreate in progress, a stale copy) the live one stands for it.
    Containers without a number take no part: compose numbers every one it makes.
    """
    found: dict[int, Container] = {}
    for container in group:
        number = replica_number(container)
        if number is not None and number not in found:
            found[number] = container
    return dict(sorted(found.items()))


def engine_prefix(stack: Stack) -> str:
    """``DOCKER_HOST=… `` before a command line, unless the engine is the default local one.

    Printed commands carry the engine they were checked on, so a command copied
    into another shell talks to the same engine. A password in the address (which
    the stack file refuses for ssh://, but DOCKER_HOST may carry) is masked.
    """
    address = chosen_engine(stack)
    if address:
        address = redact_text(address, ())
    # The assignment word itself must stay unquoted for the shell to read it as one.
    return f"DOCKER_HOST={shlex.quote(address)} " if address else ""


def docker_command(stack: Stack) -> str:
    return engine_prefix(stack) + "docker"


def compose_command(labels: dict[str, str], project: str, stack: Stack) -> str:
    """The compose invocation that manages this container, as its own labels describe it."""
    version = labels.get("com.docker.compose.version", "2")
    words = ["docker-compose"] if version.startswith("1.") else ["docker", "compose"]
    words += ["-p", project]
    # compose v1 records the files relative to the project's working directory.
    workdir = labels.get("com.docker.compose.project.working_dir", "")
    files = labels.get("com.docker.compose.project.config_files", "")
    for path in filter(None, files.split(",")):
        words += ["-f", os.path.join(workdir, path)]
    return engine_prefix(stack) + shlex.join(words)


# The environment's digests: at most this many variables by name (the whole
# environment always has one digest, under the name ""), names cut to NAME_MAX.
ENV_VARS_MAX = 256
ENV_NAME_MAX = 128
ENV_DIGEST_HEX = 16  # 64 bits: enough to tell a change, too short to be worth more


def key_id(key: bytes) -> str:
    """A name for a digest key that reveals nothing of it."""
    return hmac.new(key, b"stackcheck key id", hashlib.sha256).hexdigest()[:12]


def env_digests(env: Any, key: bytes) -> dict[str, str]:
    """Keyed digests of a container's ``NAME=value`` list: one per name, "" for all.

    Only the digests leave this function, never a value: HMAC-SHA256 under a
    key of the reports directory, so a short secret cannot be found by trying
    guesses against a stored digest without that key.
    """
    items = sorted({str(item) for item in env or [] if isinstance(item, str)})
    whole = hmac.new(key, "\0".join(items).encode("utf-8", "replace"), hashlib.sha256)
    found = {"": whole.hexdigest()[:ENV_DIGEST_HEX]}
    for item in items[:ENV_VARS_MAX]:
        name = item.partition("=")[0]
        digest = hmac.new(key, item.encode("utf-8", "replace"), hashlib.sha256)
        if len(name) > ENV_NAME_MAX:
            name = name[: ENV_NAME_MAX - 10] + "…" + digest.hexdigest()[:8]
        if name:
            found[name] = digest.hexdigest()[:ENV_DIGEST_HEX]
    return found


def container_facts(
    client: docker.DockerClient,
    service: str,
    group: list[Container],
    stack: Stack,
    env_key: bytes | None = None,
) -> ContainerFacts:
    facts = ContainerFacts(service=service)
    if not group:
        facts.compose_cmd = compose_command({}, stack.compose_project, stack)
        return facts
    container = group[0]
    attrs: dict[str, Any] = container.attrs
    state = attrs.get("State", {})
    facts.found = True
    facts.name = container.name or ""
    facts.id = container.id or ""
    facts.state = state.get("Status", "unknown")
    facts.exit_code = state.get("ExitCode")
    facts.oom_killed = bool(state.get("OOMKilled"))
    facts.started_at = state.get("StartedAt")
    facts.finished_at = state.get("FinishedAt")
    facts.restart_count = int(attrs.get("RestartCount", 0))
    health = state.get("Health")
    if health:
        facts.health_status = health.get("Status")
        log = health.get("Log") or []
        if log:
            facts.health_output = str(log[-1].get("Output", "")).strip()[:LOG_LINE_CAP]
    host_config = attrs.get("HostConfig", {})
    if host_config.get("NanoCpus"):
        facts.cpu_limit = host_config["NanoCpus"] / 1e9
    elif host_config.get("CpuQuota", 0) > 0 and host_config.get("CpuPeriod"):
        facts.cpu_limit = host_config["CpuQuota"] / host_config["CpuPeriod"]
    facts.mem_limit = int(host_config.get("Memory") or 0)
    facts.compose_cmd = compose_command(container.labels, stack.compose_project, stack)
    facts.mounts = [
        {k: str(m.get(k, "")) for k in ("Type", "Name", "Source", "Destination")}
        for m in attrs.get("Mounts") or []
        if isinstance(m, dict)
    ]
    facts.mounts += [
        {"Type": "tmpfs", "Name": "", "Source": "", "Destination": str(dest)}
        for dest in (host_config.get("Tmpfs") or {})
    ]
    config = attrs.get("Config") or {}
    # Only PGDATA is read from the environment: the rest may hold passwords.
    for item in config.get("Env") or []:
        if isinstance(item, str) and item.startswith("PGDATA="):
            facts.pgdata = item.partition("=")[2] or None
    if env_key:
        facts.env_digests = env_digests(config.get("Env"), env_key)
        facts.env_key_id = key_id(env_key)
    facts.image = str(config.get("Image") or "")[:LOG_LINE_CAP]
    facts.image_id = str(attrs.get("Image") or "")[:LOG_LINE_CAP]
    facts.created_at = attrs.get("Created")
    labels = container.labels or {}
    facts.config_hash = labels.get("com.docker.compose.config-hash")

    # Restarts that docker's own counters forget (a restart policy resets
    # OOMKilled on the next start) still show in the engine's event log.
    now = int(time.time())
    events = client.events(
        since=now - int(stack.thresholds.stable_window_s),
        until=now,
        filters={"type": "container", "container": facts.id, "event": ["die", "oom"]},
        decode=True,
    )
    try:
        for event in events:
            if event.get("Action") == "oom" or event.get("status") == "oom":
                facts.recent_ooms += 1
            else:
                facts.recent_dies += 1
                code = event.get("Actor", {}).get("Attributes", {}).get("exitCode")
                if code is not None and str(code).lstrip("-").isdigit():
                    facts.recent_exit_codes.append(int(code))
    finally:
        _close(events)
    return facts


def is_local(stack: Stack) -> bool:
    """Whether the stack's engine listens on this machine (a unix socket)."""
    address = chosen_engine(stack)
    return address is None or address.startswith("unix://")


def stats_facts(
    client: docker.DockerClient, service: str, container: Container, on_host: bool = False
) -> StatsFacts:
    """Memory and CPU as `docker stats` counts them, from the container's cgroup.

    ``on_host`` (a local engine): read from this machine when it sees the
    container's cgroup (``cgroup.host_paths``), else, and for any other
    engine, through one exec in the container. Falls back to the engine's own
    stats (``engine_stats_facts``, 1-2 s) when the container cannot run the
    reading: no ``sh`` in the image, the exec refused, or no cgroup counters of
    its own at /sys/fs/cgroup.
    """
    import docker.errors

    facts = StatsFacts(service=service)
    facts.mem_limited = bool(container.attrs.get("HostConfig", {}).get("Memory"))
    output = _host_reading(container) if on_host else None
    if output is not None:
        try:
            reading = cgroup.parse(output)
        except (cgroup.CannotRead, cgroup.OutputError):
            pass  # e.g. the container stopped meanwhile: the exec says how it is now
        else:
            _file_reading(facts, reading, "read on the host")
            return facts
    try:
        output, code = _exec_bounded(client, container, cgroup.argv(), cgroup.OUTPUT_CAP)
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc).lower()
        if any(word in text for word in ("is paused", "is not running", "is restarting")):
            file_refusal(facts, exc, f"the cgroup reading in {container.name}")
            return facts
        return engine_stats_facts(client, service, container, why=f"exec refused: {exc}")
    try:
        reading = cgroup.parse(output)
    except cgroup.CannotRead as exc:
        return engine_stats_facts(client, service, container, why=str(exc))
    except cgroup.OutputError as exc:
        if code in (126, 127) or b"executable file not found" in output[:1024]:
            return engine_stats_facts(client, service, container, why="no sh in the image")
        facts.blind = (
            f"cannot read {container.name}'s memory and CPU from its cgroup (exit {code}): {exc}"
        )
        return facts
    _file_reading(facts, reading)
    return facts


def _file_reading(facts: StatsFacts, reading: cgroup.Reading, how: str = "") -> None:
    facts.mem_usage = reading.mem_usage
    facts.mem_limit = reading.mem_limit
    facts.cpu_percent = reading.cpu_percent
    facts.online_cpus = reading.online_cpus
    facts.cpu_limit = reading.cpu_limit
    facts.source = f"cgroup {reading.version}" + (f", {how}" if how else "")


def _host_reading(container: Container) -> bytes | None:
    """The cgroup reading taken on this machine (``cgroup.read_on_host``) from the
    container's cgroup as the host mounts it; None when this machine does not
    see it (the exec then reads it inside)."""
    pid = (container.attrs.get("State") or {}).get("Pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        with open(f"{cgroup.PROC_ROOT}/{pid}/cgroup", "rb") as found:
            text = found.read(cgroup.HOST_CGROUP_CAP).decode("ascii", errors="replace")
    except OSError:
        return None
    paths = cgroup.host_paths(text, str(container.id))
    return cgroup.read_on_host(paths) if paths is not None else None


def _exec_bounded(
    client: docker.DockerClient, container: Container, argv: list[str], cap: int
) -> tuple[bytes, int | None]:
    """Standard output of ``argv`` run in the container, read up to just over ``cap`` bytes,
    and its exit code (None if cut short). Standard error is read and left out."""
    api = client.api
    exec_id = api.exec_create(container.id, argv, stdout=True, stderr=True)["Id"]
    out = bytearray()
    err = 0
    stream = api.exec_start(exec_id, stream=True, demux=True)
    try:
        for chunk, errors in stream:
            out += chunk or b""
            err += len(errors or b"")
            if len(out) > cap or err > cap:
                return bytes(out), None
    finally:
        _close(stream)
    return bytes(out), api.exec_inspect(exec_id).get("ExitCode")


def engine_stats_facts(
    client: docker.DockerClient, service: str, container: Container, why: str = ""
) -> StatsFacts:
    """One ``docker stats`` sample from the engine: waits for its next tick (1-2 s)."""
    facts = StatsFacts(service=service, source="docker stats" + (f" ({why})" if why else ""))
    raw: dict[str, Any] = client.api.stats(container.id, stream=False)
    memory = raw.get("memory_stats") or {}
    if "usage" not in memory:
        facts.error = f"no stats for {container.name}: the engine returned none (not running?)"
        return facts
    detail = memory.get("stats", {})
    # What `docker stats` shows: page cache is reclaimable, so it is not pressure.
    cache = detail.get("total_inactive_file", detail.get("inactive_file", detail.get("cache", 0)))
    facts.mem_usage = int(memory["usage"]) - int(cache)
    facts.mem_limit = int(memory.get("limit", 0))
    cpu, pre = raw.get("cpu_stats", {}), raw.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    if cpu_delta > 0 and system_delta > 0:
        facts.cpu_percent = cpu_delta / system_delta * online * 100.0
    facts.online_cpus = int(online)
    facts.mem_limited = bool(container.attrs.get("HostConfig", {}).get("Memory"))
    return facts


def _frames(stream: Any, tty: bool) -> Iterator[bytes]:
    """The log stream's bytes in pieces: one per log entry, or large chunks for a tty."""
    response = getattr(stream, "_response", None)
    raw = getattr(response, "raw", None)
    if not tty or raw is None:
        yield from stream
        return
    # docker-py reads a tty container's raw stream one byte per item (2.9 s a
    # MiB, measured): take the first byte its way (it checks the answer's
    # status), then read the rest of the same response in large chunks.
    for first in stream:
        yield first
        break
    while chunk := raw.read(LOG_CHUNK_BYTES):
        yield chunk


def _close(stream: Any) -> None:
    # Gives the stream's connection back, also over ssh:// (see streams).
    close_stream(stream)


def _log_stream(container: Container, tty: bool, tail: int, since: int) -> Any:
    """The container's log entries as a stream, on one connection of the client's pool.

    docker-py's ``logs()`` asks the engine whether the container has a tty
    while it holds the log stream's connection: two connections at once for
    one read. Over ssh:// the pool is the engine's few sessions, and a few log
    reads at once each held one and waited for another until the deadline
    (issue 10). The tty is known here (from the container's attributes), so
    the stream is requested as ``logs()`` would, without that second call.
    """
    import docker

    api = getattr(getattr(container, "client", None), "api", None)
    if not isinstance(api, docker.APIClient):  # not the SDK's own container (a fake)
        return container.logs(
            stdout=True, stderr=True, stream=True, follow=False, tail=tail, since=since
        )
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 0, "follow": 0}
    params["tail"] = tail
    if since > 0:
        params["since"] = since
    response = api._get(api._url("/containers/{0}/logs", container.id), params=params, stream=True)
    try:
        output = api._get_result_tty(True, response, tty)
    except BaseException:
        response.close()
        raise
    return docker.types.CancellableStream(output, response)


def read_newest_logs(
    container: Container, tail: int, since: int, deadline: Deadline | None = None
) -> bytes | None:
    """The newest log output within ``tail`` entries and ``since``, at most LOG_READ_BYTES.

    The engine counts ``tail`` in log entries, not lines, and splits a line
    longer than 16 KiB into several entries (a 10 MB line is 611 of them); it
    sends the oldest of the requested entries first, and only all of them at
    once unless streamed. So the entries are streamed and counted in bytes:
    if the requested tail is more than LOG_READ_BYTES, the read stops there
    and the tail is asked for again, halved (or cut to the entries that did
    fit), until the newest entries fit. The window is therefore always the
    newest output: a long line cannot push the lines after it out of it, and
    lines older than the newest LOG_READ_BYTES are not read. The entries of a
    split line arrive without line breaks between them, so the line is whole
    again in the window. None: the deadline passed before a window fitted.
    """
    tty = bool(((getattr(container, "attrs", None) or {}).get("Config") or {}).get("Tty"))
    want = max(1, tail)
    while True:
        stream = _log_stream(container, tty, tail=want, since=since)
        window = bytearray()
        entries = 0
        over = False
        try:
            for frame in _frames(stream, tty):
                if len(window) + len(frame) > LOG_READ_BYTES:
                    over = True
                    break
                window += frame
                entries += 1
        finally:
            _close(stream)
        if not over:
            return bytes(window)
        if want == 1:
            # One entry larger than the budget (a driver that does not split):
            # its first LOG_READ_BYTES are all there is to read.
            return bytes(window)
        if deadline is not None and deadline.left(floor=0.0) <= 0:
            return None
        # For a tty the pieces are chunks, not entries: only halve.
        want = max(1, want // 2 if tty else min(want // 2, entries))


def _excerpt(line: str, at: int) -> str:
    """``line`` as evidence: whole if short, else LOG_LINE_CAP characters around ``at``.

    What is left out is said with a marker, so a cut line never reads as a
    whole one, and a bad word far into a long line is still shown.
    """
    text = line.strip()
    if len(text) <= LOG_LINE_CAP:
        return text
    at = max(0, at - (len(line) - len(line.lstrip())))
    start = 0 if at < LOG_LINE_CAP - LOG_EXCERPT_LEAD else at - LOG_EXCERPT_LEAD
    start = min(start, len(text) - LOG_LINE_CAP)
    end = start + LOG_LINE_CAP
    before = f"[truncated {start} chars] … " if start else ""
    after = f" … [truncated {len(text) - end} chars]" if end < len(text) else ""
    return before + text[start:end] + after


def log_facts(
    container: Container, service: str, rules: LogRules, deadline: Deadline | None = None
) -> LogFacts:
    """The bad lines among the newest log output (see ``read_newest_logs`` for the window).

    The stack file's patterns are user-supplied regexes: ``logmatch`` runs
    them so that a catastrophic one ends in "could not check", naming it,
    within a budget of half the probe time left, never in a stalled run.
    """
    facts = LogFacts(service=service)
    try:
        rules_matcher = logmatch.matcher(tuple(rules.patterns), tuple(rules.ignore))
    except logmatch.PatternError as exc:
        facts.blind = f"cannot match {service}'s log: {exc}; fix it in the stack file"
        return facts
    since = int(time.time() - rules.since_s)
    raw = read_newest_logs(container, rules.tail, since, deadline)
    if raw is None:
        facts.blind = (
            f"the newest {LOG_READ_BYTES // 1024} KiB of {service}'s log could not be "
            "read before the probe deadline"
        )
        return facts
    # Logs are bytes from anything: never let an odd byte stop the check.
    lines = raw.decode("utf-8", errors="replace").splitlines()
    facts.lines_read = len(lines)
    budget = LOG_MATCH_BUDGET_S if deadline is None else deadline.left() * LOG_MATCH_SHARE
    until = time.monotonic() + budget
    try:
        for line in lines:
            at = rules_matcher.bad_at(line, until)
            if at is not None:
                facts.matches.append(_excerpt(line, at))
    except logmatch.OutOfTime as exc:
        facts.matches = []
        facts.blind = _out_of_time(service, exc, budget, len(lines))
        return facts
    facts.match_count = len(facts.matches)
    facts.matches = facts.matches[-LOG_MATCH_CAP:]
    return facts


def _out_of_time(service: str, exc: logmatch.OutOfTime, budget: float, lines: int) -> str:
    """One line: which pattern ran out of time, and what to do about it."""
    one_line = (
        f"did not finish on one line of {service}'s log within "
        f"{logmatch.MATCH_CALL_S:g} s of CPU time"
    )
    if exc.pattern is not None:
        return (
            f"log pattern {logmatch.shown(exc.pattern)} (the stack file's [logs] {exc.role}) "
            f"{one_line}: it backtracks catastrophically (nested or overlapping repetition "
            "such as (a+)+, (a|a)* or (.*x)*); simplify the pattern so that no part of a "
            "line can be matched in many ways"
        )
    if exc.suspects:
        named = ", ".join(logmatch.shown(p) for p in exc.suspects)
        return (
            f"the stack file's [logs] {exc.role} ({named}) {one_line}: one of them "
            "backtracks catastrophically; simplify it"
        )
    return (
        f"matching the stack file's [logs] patterns against {lines} lines of {service}'s log "
        f"took more than its {budget:.1f} s budget: simplify the patterns or lower [logs] tail"
    )


DEFAULT_PGDATA = "/var/lib/postgresql/data"
DF_TIMEOUT_S = 2


def _holder(path: str, facts: ContainerFacts) -> str:
    """What holds ``path`` in the container: the mount with the longest matching destination."""
    best: dict[str, str] | None = None
    for mount in facts.mounts:
        dest = mount.get("Destination", "").rstrip("/") or "/"
        if (path == dest or path.startswith(dest.rstrip("/") + "/")) and (
            best is None or len(dest) > len(best.get("Destination", ""))
        ):
            best = mount
    if best is None:
        return "the container's writable layer, not a volume"
    kind = best.get("Type", "")
    if kind == "volume":
        return f"volume {best.get('Name') or best.get('Source', '')}"
    if kind == "bind":
        return f"bind mount of {best.get('Source', '')}"
    return kind or "a mount"


def datafs_facts(container: Container, service: str, facts: ContainerFacts) -> DataFsFacts:
    """``df`` of the data directory, run inside the container: any engine, local or remote."""
    import docker.errors

    path = facts.pgdata or DEFAULT_PGDATA
    found = DataFsFacts(service=service, path=path, mount=_holder(path, facts))
    try:
        result = container.exec_run(["df", "-Pk", "--", path], stdout=True, stderr=True)
        if result.exit_code == 0 and not (result.output or b"").strip():
            # Seen on this engine, rarely (1 run in 20 in CI): a short exec's exit
            # status without its output. df always prints: ask once more.
            result = container.exec_run(["df", "-Pk", "--", path], stdout=True, stderr=True)
    except docker.errors.APIError as exc:
        file_refusal(found, exc, f"df in {container.name}")
        return found
    output = (result.output or b"").decode("utf-8", errors="replace")
    lines = output.strip().splitlines()
    fields = lines[-1].split() if len(lines) >= 2 else []
    if result.exit_code != 0 or len(fields) < 6 or not all(f.isdigit() for f in fields[1:4]):
        first = " ".join(output.split())[:LOG_LINE_CAP]
        found.blind = (
            f"cannot measure {path} inside {container.name} with df (exit {result.exit_code}: "
            f"{first}); give the image df (coreutils or busybox), set PGDATA in the container, "
            'or declare the gap: gaps = ["pg_data_disk"]'
        )
        return found
    found.size_kb, found.used_kb, found.avail_kb = (int(f) for f in fields[1:4])
    return found
