"""Run one fixed script inside a container through the engine, reading a bounded answer.

The in-container paths (``postgres_via = "exec"``, ``health_via = "exec"``) run
a script that is a constant of the checker; whatever comes from the stack file
(a role, a database, a URL) reaches it only as a positional argument, never as
script text, and no shell on the checker's side is involved. What the container
prints is hostile input: it is read from the stream up to a cap (a program that
prints without end costs nothing past it), and parsed strictly by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker.errors

from stackcheck.probes.streams import close_stream

# Far more than any answer the scripts print (a status line, three numbers,
# an error message, a capped body); the rest of a runaway output is not read.
OUTPUT_CAP = 16 * 1024


@dataclass
class Ran:
    """What one exec gave: its exit code (None if unknown) and its capped output."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool = False


def run(
    container: Any,
    argv: list[str],
    environment: dict[str, str] | None = None,
    cap: int = OUTPUT_CAP,
) -> Ran:
    """Run ``argv`` in ``container``; raise docker.errors.APIError when the engine refuses."""
    api = container.client.api
    created = api.exec_create(
        container.id, argv, stdout=True, stderr=True, environment=environment or {}
    )
    exec_id = created["Id"]
    out = bytearray()
    err = bytearray()
    truncated = False
    stream = api.exec_start(exec_id, stream=True, demux=True)
    try:
        for chunk_out, chunk_err in stream:
            out += chunk_out or b""
            err += chunk_err or b""
            if len(out) > cap or len(err) > cap:
                truncated = True
                break
    finally:
        # Also over ssh://, where docker-py's own close() refuses ("Cancellable
        # streams not supported for the SSH protocol") and the exec's session
        # would stay out of the engine's pool: see streams.
        close_stream(stream)
    exit_code: int | None = None
    if not truncated:
        try:
            exit_code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError:
            exit_code = None
    return Ran(exit_code, bytes(out[:cap]), bytes(err[:cap]), truncated)
