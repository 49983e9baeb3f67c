"""Ending the Docker SDK's streams so that their connection comes back, over any transport.

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
from typing import Any


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
