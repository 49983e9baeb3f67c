"""The Docker SDK's streams, over any transport: their start read whole, their end
giving the connection back.

An exec's output follows the engine's answer head on the same connection,
and docker-py reads it from the socket itself. http.client reads that head
through a buffered file, in chunks: a quick command's output that arrived with
the head went into the file's buffer and was lost, so the exec "printed
nothing" (docker-py issue 3332; seen here about 1 exec in 800 on a loaded
machine, and in CI as a data-disk probe with no output). ``UpgradeAware``
connections read such heads a byte at a time, so nothing is read past them:
the SSH engine's (``sshengine``) and the local socket's (``unix_adapter``).

A streamed answer (logs, events, an exec's output) holds one connection of the
client's pool until it is given back. docker-py gives it back only when the
answer was read through the HTTP layer to its end; its ``close()`` refuses an
SSH stream ("Cancellable streams not supported for the SSH protocol"), and an
exec's output, read from the connection's socket itself, is never given back
even when read to its end. Locally that costs nothing (the pool opens another
socket); over ``ssh://`` the pool is the engine's few SSH sessions
(``sshengine.MAX_SESSIONS``), and each stream left open took one of them away
for the rest of the run: after a few, every probe waited out the deadline for
a session (issue 10).
"""

from __future__ import annotations

import contextlib
import http.client
from typing import Any


class HeadReader:
    """An upgraded answer's head, read from the socket without reading past it.

    Only upgraded answers (an exec's start, attach) are read so: their head is
    about 150 bytes. ``channel`` and ``raw`` are where docker-py takes the
    stream from, over SSH and over a local socket.
    """

    def __init__(self, sock: Any) -> None:
        self.channel = self.raw = sock
        self.closed = False

    def readline(self, limit: int = -1) -> bytes:
        line = bytearray()
        while limit < 0 or len(line) < limit:
            byte = self.channel.recv(1)
            if not byte:
                break
            line += byte
            if byte == b"\n":
                break
        return bytes(line)

    def read(self, amt: int | None = None) -> bytes:
        data = bytearray()
        while amt is None or len(data) < amt:
            chunk = self.channel.recv(65536 if amt is None else amt - len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        chunk = self.channel.recv(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True  # the socket is the connection's to close


class UpgradedResponse(http.client.HTTPResponse):
    """The answer to an upgrade request, its head read by ``HeadReader``."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp = HeadReader(sock)  # type: ignore[assignment]


class UpgradeAware:
    """For an HTTP connection class: an upgrade request's answer is an ``UpgradedResponse``."""

    _upgrade = False

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        self._upgrade = False
        super().putrequest(*args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: str, *values: str) -> None:
        super().putheader(header, *values)  # type: ignore[misc]
        if header.lower() == "upgrade":
            self._upgrade = True

    def getresponse(self) -> Any:
        upgraded = self._upgrade
        self.response_class = UpgradedResponse if upgraded else http.client.HTTPResponse
        return super().getresponse()  # type: ignore[misc]


def keep_exec_output(client: Any) -> Any:
    """``client`` (a docker.DockerClient), on a local socket reading exec heads whole."""
    from docker.transport.unixconn import UnixHTTPAdapter

    old = getattr(client.api, "_custom_adapter", None)
    if isinstance(old, UnixHTTPAdapter):
        adapter = unix_adapter(old)
        client.api.mount("http+docker://", adapter)
        client.api._custom_adapter = adapter
        old.close()
    return client


def unix_adapter(old: Any) -> Any:
    """docker-py's adapter for a local socket, rebuilt with ``UpgradeAware`` connections."""
    from docker.transport.unixconn import (
        UnixHTTPAdapter,
        UnixHTTPConnection,
        UnixHTTPConnectionPool,
    )

    class Connection(UpgradeAware, UnixHTTPConnection):  # type: ignore[misc]
        pass

    class Pool(UnixHTTPConnectionPool):  # type: ignore[misc]
        def _new_conn(self) -> Any:
            return Connection(self.base_url, self.socket_path, self.timeout)

    class Adapter(UnixHTTPAdapter):  # type: ignore[misc]
        def get_connection(self, url: Any, proxies: Any = None) -> Any:
            with self.pools.lock:
                pool = self.pools.get(url)
                if pool is None:
                    pool = Pool(url, self.socket_path, self.timeout, maxsize=self.max_pool_size)
                    self.pools[url] = pool
            return pool

    return Adapter(
        f"http+unix://{old.socket_path}", timeout=old.timeout, max_pool_size=old.max_pool_size
    )


def session_of(stream: Any) -> Any:
    """The SSH channel under a docker-py stream, or None (local, or already ended)."""
    response = getattr(stream, "_response", None)
    fp = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    return getattr(fp, "channel", None)


def close_stream(stream: Any) -> None:
    """End ``stream`` and give its connection back to the client's pool; never raises.

    Over SSH the stream's session is closed (its ``docker system dial-stdio``
    ends with it) and the pool opens a fresh one for the next call; locally the
    SDK's own ``close()`` shuts the socket. Either way the response is closed,
    which returns its connection to the pool.
    """
    channel = session_of(stream)
    with contextlib.suppress(Exception):
        if channel is not None:
            channel.close()
        else:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()
