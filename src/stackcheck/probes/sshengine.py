"""Docker engines behind ``ssh://``: one SSH connection per engine per run, bounded.

The Docker SDK's own SSH support (paramiko) connects without any timeout,
reads ~/.ssh/config (whose ProxyCommand starts a process per client) and
keys its connection pools by request URL, so that every ``exec`` opens one
more SSH session: eight probes at once exhaust sshd's default
``MaxSessions 10``. Here instead:

- one paramiko transport per engine (address + key + known_hosts) for the
  whole process, shared by every stack and probe on that engine;
- at most ``MAX_SESSIONS`` sessions open on it at once (one pool of that
  size; a probe waits for a free session, within the deadline);
- the TCP connect, the SSH banner, the key exchange and the login within
  ``[ssh] connect_timeout_s`` (default ``timeouts.connect_s``) and never past
  the probe deadline, whatever the peer does;
- the engine host's key must already be in known_hosts: an unknown or changed
  key is refused, never learnt;
- every failure is one line naming the host and the fix (``EngineUnreachable``),
  which the probes report as "could not check".

paramiko is imported only when an ``ssh://`` engine is used.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import docker
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from stackcheck.config import SSHSettings
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.streams import UpgradeAware
from stackcheck.redact import strip_controls

if TYPE_CHECKING:
    import paramiko

# Sessions one engine may have open at once: sshd's default MaxSessions is 10,
# and a login may already hold some (the issue measured 8 threads at once
# failing 8 of 8 with the SDK's pools; 4 at once, none).
MAX_SESSIONS = 4
SESSION_POLL_S = 0.01
OPEN_ADMINISTRATIVELY_PROHIBITED = 1  # RFC 4254 5.1: forwarding is switched off
# How long refused sessions are retried before MaxSessions is called exhausted.
REFUSED_RETRY_S = 1.0
DIAL = "docker system dial-stdio"
STDERR_CAP = 300
# The engine's (remote) side of the API, as the SDK's hijacking code expects it.
BASE_URL = "http+docker://ssh"


class EngineUnreachable(ConnectionError):
    """The checker cannot reach or use an engine: one line naming the host and the fix."""


@dataclass(frozen=True)
class Target:
    """Who logs in where: from ``ssh://user@host[:port]``."""

    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, address: str) -> Target:
        parts = urlsplit(address)
        return cls(parts.username or getpass.getuser(), parts.hostname or "", parts.port or 22)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{host}{port}"


def _said(text: object, cap: int = STDERR_CAP) -> str:
    """What a library or the remote host said, on one line, without control characters."""
    return strip_controls(" ".join(str(text).split()))[:cap]


def _seconds(value: float) -> str:
    return f"{value:.3g} s"


def ssh_command(target: Target, settings: SSHSettings) -> str:
    """The ``ssh`` line that logs in as the checker does, for a hint."""
    import shlex

    words = ["ssh"]
    if target.port != 22:
        words += ["-p", str(target.port)]
    if settings.identity_file is not None:
        words += ["-i", str(settings.identity_file)]
    if settings.known_hosts is not None:
        words += ["-o", f"UserKnownHostsFile={settings.known_hosts}"]
    words += ["-o", "StrictHostKeyChecking=yes", f"{target.user}@{target.host}"]
    return shlex.join(words)


def describe_connect_error(
    target: Target, settings: SSHSettings, exc: BaseException, budget: float
) -> str:
    """One line for a failed SSH connect or login: what happened at ``target``, what to do."""
    import paramiko

    known = str(settings.known_hosts or "~/.ssh/known_hosts")
    login = ssh_command(target, settings)
    scan = f"ssh-keyscan -p {target.port} {target.host}"
    text = _said(exc)
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"SSH host key of {target} does NOT match the one in {known}: the host was "
            "rebuilt or someone is in between; verify the new key out of band, then replace "
            f"the line for {target.host} in {known}"
        )
    if isinstance(exc, paramiko.PasswordRequiredException):
        return (
            f"SSH to {target}: the private key {settings.identity_file or '(from ~/.ssh)'} "
            "is encrypted "
            "and no passphrase is asked for: load it into ssh-agent (ssh-add) and leave "
            "[ssh] identity_file out, or use an unencrypted key kept for checking"
        )
    if isinstance(exc, paramiko.AuthenticationException) or "No authentication methods" in text:
        key = (
            f"the key {settings.identity_file} is not accepted"
            if settings.identity_file
            else "no key of the SSH agent or ~/.ssh is accepted"
        )
        return (
            f"SSH to {target} refused the login ({key}): add the public key to "
            f"~{target.user}/.ssh/authorized_keys on {target.host}, or point [ssh] "
            f"identity_file at a key it accepts; try: {login} true"
        )
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in text:
        return (
            f"SSH host key of {target} is not in {known}, and an unknown host is never "
            f"trusted: verify the host's key fingerprint, then add it ({scan} >> {known}; "
            "or log in once with ssh and check the fingerprint it shows)"
        )
    if isinstance(exc, _Stalled) and exc.spoke:
        return (
            f"SSH to {target}: the server answered but the key exchange and login did not "
            f"finish within {_seconds(budget)}: is {target.host} (or this machine) "
            "overloaded? raise [ssh] connect_timeout_s for a slow link"
        )
    if isinstance(exc, TimeoutError) or "banner" in text.lower():
        if "banner" in text.lower() or isinstance(exc, _Stalled):
            return (
                f"SSH to {target}: the port accepts TCP but did not speak SSH within "
                f"{_seconds(budget)}: is {target.port} the SSH port of {target.host}, and "
                "is sshd healthy there? (raise [ssh] connect_timeout_s for a slow link)"
            )
        return (
            f"SSH to {target}: no answer within {_seconds(budget)}: check that "
            f"{target.host} is up and port {target.port} is reachable from here "
            "(raise [ssh] connect_timeout_s for a slow link)"
        )
    if isinstance(exc, socket.gaierror):
        return f"SSH to {target}: cannot resolve {target.host} ({text}): fix docker_host"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionError):
        return (
            f"SSH to {target}: connection refused: is sshd running on {target.host} "
            f"and listening on port {target.port}? (fix docker_host's port)"
        )
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return (
            f"SSH to {target}: cannot read {exc.filename or 'a key file'} "
            f"({exc.strerror or text}): fix [ssh] identity_file or known_hosts"
        )
    return f"SSH to {target} failed ({type(exc).__name__}: {text}); try: {login} true"


class _Stalled(TimeoutError):
    """The connect thread outlived its budget: a peer that accepts but never speaks
    (``spoke`` False), or a handshake or login that is too slow (``spoke`` True)."""

    def __init__(self, spoke: bool = False) -> None:
        super().__init__("SSH connect did not finish")
        self.spoke = spoke


def describe_session_error(target: Target, exc: BaseException) -> str:
    """One line for a session the server refused after login."""
    return (
        f"SSH server {target} refused a new session ({_said(exc, 80)}): "
        f"its MaxSessions is exhausted or sessions are disabled; stackcheck opens at most "
        f"{MAX_SESSIONS} at once: set MaxSessions to {MAX_SESSIONS + 2} or more in "
        f"{target.host}'s sshd_config (default 10), or close other multiplexed sessions"
    )


def describe_dial_error(target: Target, status: int | None, stderr: str) -> str:
    """One line for ``docker system dial-stdio`` failing on the remote host."""
    said = _said(stderr) or "nothing on stderr"
    lowered = said.lower()
    if "permission denied" in lowered:
        return (
            f"SSH to {target} works, but {target.user} may not use the Docker engine there "
            f"({said}): add {target.user} to the docker group on {target.host}"
        )
    if status == 127 or "not found" in lowered or "unknown command" in lowered:
        return (
            f"SSH to {target} works, but `{DIAL}` failed there (exit {status}: {said}): "
            f"install the docker CLI (18.09 or later) on {target.host} in {target.user}'s "
            "PATH for non-interactive logins"
        )
    return (
        f"SSH to {target} works, but `{DIAL}` failed there (exit {status}: {said}): "
        f"check that `docker info` answers for {target.user} on {target.host}"
    )


class _SessionConnection(UpgradeAware, urllib3.connection.HTTPConnection):  # type: ignore[misc]
    """HTTP over one SSH session running ``docker system dial-stdio``."""

    def __init__(self, engine: SSHEngine, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.engine = engine

    def connect(self) -> None:
        self.sock = self.engine.open_dial(self.timeout)

    @property
    def is_connected(self) -> bool:
        # urllib3 would select() on the channel, which costs a pipe per channel.
        sock: Any = self.sock
        return bool(sock is not None and not sock.closed and not sock.eof_received)


class _SessionPool(urllib3.connectionpool.HTTPConnectionPool):
    """At most MAX_SESSIONS connections exist; a caller waits for one within the deadline."""

    scheme = "ssh"

    def __init__(self, engine: SSHEngine) -> None:
        super().__init__("localhost", maxsize=MAX_SESSIONS, block=True)
        self.engine = engine

    def _new_conn(self) -> Any:
        return _SessionConnection(self.engine, self.engine.request_timeout())

    def _get_conn(self, timeout: float | None = None) -> Any:
        wait = self.engine.deadline.left() if timeout is None else timeout
        try:
            return super()._get_conn(timeout=wait)
        except urllib3.exceptions.EmptyPoolError:
            raise EngineUnreachable(
                f"all {MAX_SESSIONS} SSH sessions to {self.engine.target} stayed busy for "
                f"{_seconds(wait)}: the engine answers too slowly over SSH for this "
                "probe deadline; raise timeouts.probe_s"
            ) from None


class _SessionAdapter(BaseHTTPAdapter):  # type: ignore[misc]
    """Every request on the one pool, whatever its URL."""

    def __init__(self, engine: SSHEngine) -> None:
        super().__init__()
        self.pool = _SessionPool(engine)

    def get_connection(self, url: Any, proxies: Any = None) -> Any:
        return self.pool

    def request_url(self, request: Any, proxies: Any) -> Any:
        return request.path_url

    def close(self) -> None:
        self.pool.close()
        requests.adapters.HTTPAdapter.close(self)


def _no_delay(client: paramiko.SSHClient) -> None:
    """Send small packets at once, as OpenSSH does (TCP_NODELAY).

    An API call over a session is a few small writes (a request's head and
    body, window adjustments); with Nagle's algorithm each waited for the
    peer's delayed acknowledgement: an exec (create, start, inspect) took
    about 210 ms over SSH to this machine's sshd, and 80 ms without the wait.
    """
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SSHEngine:
    """One logged-in SSH connection to an engine host, and its Docker client."""

    def __init__(self, address: str, settings: SSHSettings) -> None:
        self.address = address
        self.settings = settings
        self.target = Target.parse(address)
        self.deadline = Deadline(0)
        self.client: paramiko.SSHClient | None = None
        self.docker: docker.DockerClient | None = None
        self._open: list[Any] = []  # our sessions the server has not freed yet
        self._opening = 0
        self._recent: list[Any] = []  # the newest sessions, for why dial-stdio failed
        self._lock = threading.Lock()

    def request_timeout(self) -> float:
        return max(1.0, self.deadline.left())

    def alive(self) -> bool:
        transport = self.client.get_transport() if self.client else None
        return bool(transport is not None and transport.is_active())

    def budget(self, default_s: float) -> float:
        wanted = self.settings.connect_timeout_s or default_s
        return max(0.05, min(wanted, self.deadline.left()))

    def login(self, default_s: float) -> None:
        """Connect and log in within the budget, whatever the peer does."""
        import paramiko

        budget = self.budget(default_s)
        # Every failure becomes one line of ours; paramiko's own log lines would
        # only repeat it on stderr.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        client = paramiko.SSHClient()
        settings = self.settings
        target = self.target
        try:
            if settings.known_hosts is not None:
                client.load_host_keys(str(settings.known_hosts))
            else:
                client.load_system_host_keys()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            if settings.identity_file is not None:
                # paramiko would silently try the other keys on a missing file.
                settings.identity_file.stat()
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise EngineUnreachable(describe_connect_error(target, settings, exc, budget)) from exc
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                client.connect(
                    target.host,
                    port=target.port,
                    username=target.user,
                    key_filename=(str(settings.identity_file) if settings.identity_file else None),
                    allow_agent=settings.identity_file is None,
                    look_for_keys=settings.identity_file is None,
                    timeout=budget,
                    banner_timeout=budget,
                    auth_timeout=budget,
                    channel_timeout=budget,
                )
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"ssh-login:{target}", daemon=True)
        thread.start()
        thread.join(budget)
        if not outcome:
            transport = client.get_transport()
            spoke = bool(transport is not None and getattr(transport, "remote_version", ""))
            client.close()  # ends the transport thread; the login thread ends with it
            stalled = _Stalled(spoke)
            raise EngineUnreachable(describe_connect_error(target, settings, stalled, budget))
        failure = outcome[0]
        if failure is not None:
            client.close()
            raise EngineUnreachable(
                describe_connect_error(target, settings, failure, budget)
            ) from failure
        _no_delay(client)
        self.client = client

    def _linked(self, transport: Any) -> int:
        """Our sessions the server still holds: a closed channel counts until the server
        confirms it (sshd frees a session only once its ``dial-stdio`` has exited, and
        paramiko forgets the channel then). Hold the lock."""
        channels = getattr(transport, "_channels", None)
        if channels is not None:
            self._open = [c for c in self._open if channels.get(c.chanid) is not None]
        else:  # another paramiko: at least what we closed ourselves
            self._open = [c for c in self._open if not c.closed]
        return len(self._open) + self._opening

    def _reserve(self, transport: Any, until: float, wait: float) -> None:
        """Count one more session of ours, once fewer than MAX_SESSIONS are open."""
        while True:
            with self._lock:
                if self._linked(transport) < MAX_SESSIONS:
                    self._opening += 1
                    return
            if time.monotonic() >= until:
                raise EngineUnreachable(
                    f"all {MAX_SESSIONS} SSH sessions to {self.target} stayed busy for "
                    f"{_seconds(wait)}: the engine answers too slowly over SSH for this "
                    "probe deadline; raise timeouts.probe_s"
                )
            time.sleep(SESSION_POLL_S)

    def open_dial(self, timeout: float | None) -> Any:
        """A new session running ``docker system dial-stdio``, once fewer than
        MAX_SESSIONS of ours are open on the server; waits for that within the deadline."""
        import paramiko

        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise EngineUnreachable(f"SSH connection to {self.target} was lost during the run")
        wait = max(0.05, min(timeout or self.deadline.left(), self.deadline.left()))
        until = time.monotonic() + wait
        refused_since: float | None = None
        while True:
            self._reserve(transport, until, wait)
            channel = None
            try:
                channel = transport.open_session(timeout=max(0.05, until - time.monotonic()))
            except paramiko.ChannelException as exc:
                # sshd may free a closed session a moment after it says so: try again
                # for a while before calling MaxSessions exhausted.
                now = time.monotonic()
                refused_since = refused_since or now
                if now - refused_since >= REFUSED_RETRY_S or now >= until:
                    raise EngineUnreachable(describe_session_error(self.target, exc)) from exc
            except paramiko.SSHException as exc:
                raise EngineUnreachable(
                    f"SSH server {self.target} did not open a session within {_seconds(wait)} "
                    f"({_said(exc, 80)}): is it overloaded?"
                ) from exc
            finally:
                with self._lock:
                    self._opening -= 1
                    if channel is not None:
                        self._open.append(channel)
                        self._recent = [*self._recent[-7:], channel]
            if channel is not None:
                break
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))
        channel.settimeout(timeout)
        channel.exec_command(DIAL)
        return channel

    def dial_failure(self) -> str | None:
        """Why ``dial-stdio`` ended, if a session of ours ended with an exit status."""
        with self._lock:
            dials = list(self._recent)
        for channel in reversed(dials):
            if not channel.exit_status_ready():
                continue
            status = channel.recv_exit_status()
            if status == 0:
                continue
            stderr = b""
            with contextlib.suppress(Exception):
                while channel.recv_stderr_ready() and len(stderr) < 4096:
                    stderr += channel.recv_stderr(4096)
            return describe_dial_error(self.target, status, stderr.decode("utf-8", "replace"))
        return None

    def start_docker(self) -> docker.DockerClient:
        """The Docker client over this connection; asks the engine its API version."""
        timeout = self.request_timeout()
        client = docker.DockerClient(
            base_url="tcp://127.0.0.1:9", version=docker.constants.DEFAULT_DOCKER_API_VERSION
        )
        api = client.api
        adapter = _SessionAdapter(self)
        api.mount(BASE_URL, adapter)
        api._unmount("http://", "https://")
        api._custom_adapter = adapter
        api.base_url = BASE_URL
        api.timeout = timeout
        try:
            api._version = api.version(api_version=False)["ApiVersion"]
        except EngineUnreachable:
            raise
        except Exception as exc:
            time.sleep(0.05)  # the exit status travels behind the closed stream
            why = self.dial_failure()
            if why is None:
                raise EngineUnreachable(
                    f"SSH to {self.target} works, but the Docker engine did not answer "
                    f"through `{DIAL}` ({_said(exc)}): check "
                    f"that `docker info` answers for {self.target.user} on {self.target.host}"
                ) from exc
            raise EngineUnreachable(why) from exc
        self.docker = client
        return client

    def tunnel(self, host: str, port: int, timeout: float) -> Any:
        """A ``direct-tcpip`` channel to ``host:port`` as the engine host sees it."""
        import paramiko

        transport = self.client.get_transport() if self.client else None
        if transport is None or not transport.is_active():
            raise EngineUnreachable(f"SSH connection to {self.target} was lost during the run")
        try:
            channel = transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            if exc.code == OPEN_ADMINISTRATIVELY_PROHIBITED:
                raise EngineUnreachable(
                    f"SSH server {self.target} refused to forward to {host}:{port} "
                    f"({_said(exc, 80)}): allow it with AllowTcpForwarding yes (or local) "
                    f"in {self.target.host}'s sshd_config"
                ) from exc
            raise EngineUnreachable(
                f"SSH server {self.target} could not connect to {host}:{port} "
                f"({_said(exc, 80)}): nothing answers there as {self.target.host} sees it"
            ) from exc
        except paramiko.SSHException as exc:
            raise EngineUnreachable(
                f"SSH server {self.target} did not open a tunnel to {host}:{port} within "
                f"{_seconds(timeout)} ({exc})"
            ) from exc
        channel.settimeout(timeout)
        return channel

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.docker is not None:
                self.docker.close()
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close()


_KEY = tuple[str, Path | None, Path | None]


class Engines:
    """The process's SSH engines, by address and login settings; each connected once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[_KEY, SSHEngine] = {}
        self._failures: dict[_KEY, EngineUnreachable] = {}
        self._docker_failures: dict[_KEY, EngineUnreachable] = {}
        self._locks: dict[_KEY, threading.Lock] = {}

    def engine(
        self, address: str, settings: SSHSettings, deadline: Deadline, default_s: float
    ) -> SSHEngine:
        """The engine's connection, logged in and with its Docker client started."""
        return self._get(address, settings, deadline, default_s, docker=True)

    def login(
        self, address: str, settings: SSHSettings, deadline: Deadline, default_s: float
    ) -> SSHEngine:
        """The same connection, logged in, its Docker client not needed: for the host's
        own facts, which must be read even when the engine behind it is down."""
        return self._get(address, settings, deadline, default_s, docker=False)

    def _get(
        self,
        address: str,
        settings: SSHSettings,
        deadline: Deadline,
        default_s: float,
        docker: bool,
    ) -> SSHEngine:
        key = (address, settings.identity_file, settings.known_hosts)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=deadline.left()):
            raise EngineUnreachable(
                f"SSH to {Target.parse(address)}: still connecting for another stack "
                "when the probe deadline passed"
            )
        try:
            failure = self._failures.get(key)
            if failure is not None:
                # Once a run: a second stack on the same host would wait as long again.
                raise EngineUnreachable(str(failure))
            engine = self._engines.get(key)
            if engine is not None and engine.alive():
                engine.deadline = deadline
                if engine.docker is not None:
                    engine.docker.api.timeout = engine.request_timeout()
            else:
                engine = SSHEngine(address, settings)
                engine.deadline = deadline
                try:
                    engine.login(default_s)
                except EngineUnreachable as exc:
                    engine.close()
                    self._failures[key] = exc
                    raise
                except Exception:
                    engine.close()
                    raise
                self._engines[key] = engine
            if docker and engine.docker is None:
                failed = self._docker_failures.get(key)
                if failed is not None:
                    raise EngineUnreachable(str(failed))
                try:
                    engine.start_docker()
                except EngineUnreachable as exc:
                    # The login stands (the host's facts use it); the engine does not.
                    self._docker_failures[key] = exc
                    raise
            return engine
        finally:
            lock.release()

    def close(self) -> None:
        """Close every connection and forget failures: the next run starts afresh."""
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
            self._failures.clear()
            self._docker_failures.clear()
        for engine in engines:
            engine.close()


ENGINES = Engines()
