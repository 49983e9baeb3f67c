"""A fake Docker engine's answers, for the tests of the transports that reach one.

``serve_docker_api`` answers one connection's requests as the engine would for
container ``c1``: the version, its inspect, its logs (``LOG_LINES``), and an
exec (``e1``) whose output is sent in the same packet as the answer's head, as
a quick command's is when the checker reads the head late (docker-py issue
3332). Over SSH it is a dial-stdio session (tests/unit/test_ssh_sessions.py),
locally a unix socket connection (tests/unit/test_exec_output.py).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

LOG_LINES = b"".join(b"line %d\n" % i for i in range(20))
EXEC_OUT, EXEC_ERR = b"out\n", b"err\n"


def frame(data: bytes, kind: int = 1) -> bytes:
    """One frame of a multiplexed stream (1: standard output, 2: standard error)."""
    return struct.pack(">BxxxL", kind, len(data)) + data


def read_request(reader: Any) -> tuple[str, str] | None:
    """The next request's method and path (its body read and dropped); None at the end."""
    line = reader.readline()
    if not line:
        return None
    method, path, _ = line.decode().split(" ", 2)
    length = 0
    while (header := reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        reader.read(length)
    return method, path.split("?", 1)[0]


def answer(send: Callable[[bytes], Any], body: bytes, kind: str = "application/json") -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
    send(head.encode() + body)


def serve_docker_api(
    reader: Any, send: Callable[[bytes], Any], seen: Callable[[str], None] | None = None
) -> None:
    """Answer requests until the client closes the connection or an exec takes it over."""
    while (request := read_request(reader)) is not None:
        method, path = request
        if seen is not None:
            seen(f"{method} {path}")
        if path.endswith("/version"):
            answer(send, json.dumps({"ApiVersion": "1.41"}).encode())
        elif path.endswith("/containers/c1/exec"):
            answer(send, json.dumps({"Id": "e1"}).encode())
        elif path.endswith("/exec/e1/start"):
            send(
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                + frame(EXEC_OUT)
                + frame(EXEC_ERR, 2)
            )
            return  # the engine closes an exec's connection when it ends
        elif path.endswith("/exec/e1/json"):
            answer(send, json.dumps({"ExitCode": 0}).encode())
        elif path.endswith("/logs"):
            answer(send, frame(LOG_LINES), "application/vnd.docker.multiplexed-stream")
        elif path.endswith("/json"):
            answer(send, json.dumps({"Id": "c1", "Config": {"Tty": False}}).encode())
        else:
            send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
