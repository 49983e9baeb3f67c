"""A minimal Residency Scheduler backend: just enough API to be checked.

Faults are switched by files under /run/faults (and the crash-loop markers in
/app), written with ``docker exec`` by testbed/stack.py, so the code under test
is the same in every scenario.
"""

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import NoReturn

import psycopg
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

FAULTS = Path("/run/faults")
OOM_LOOP = Path("/app/oomloop")
DATABASE_URL = os.environ["DATABASE_URL"]

app = FastAPI(title="Residency Scheduler (testbed)")


def _grow_until_killed() -> NoReturn:
    """Allocate until the kernel's OOM killer ends the process (mem_limit 256m)."""
    hog = []
    while True:  # every page is written, so all of it counts against mem_limit
        hog.append(b"\x01" * (8 << 20))


def _oom_watcher() -> None:
    """The backend-oom-killed fault: once /run/faults/oom appears, grow until killed.

    The file is deleted *before* allocating, so the restart that the restart
    policy makes after the kernel's OOM kill comes up clean: one kill, no loop.
    The backend-oom-crashloop marker /app/oomloop is never deleted: it starts
    the first kill here and every later one at import, below.
    """
    trigger = FAULTS / "oom"
    while True:
        if trigger.exists():
            trigger.unlink(missing_ok=True)
            _grow_until_killed()
        if OOM_LOOP.exists():
            _grow_until_killed()
        time.sleep(0.2)


# The backend-oom-crashloop fault: the marker is in the container's writable
# layer, so it survives the restarts; growing at import, before uvicorn binds
# its port, means every start is OOM-killed without ever serving a request.
if OOM_LOOP.exists():
    _grow_until_killed()

threading.Thread(target=_oom_watcher, name="oom-fault", daemon=True).start()


def _fault(name: str) -> bool:
    return (FAULTS / name).exists()


def _database_ok() -> str | None:
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # the health endpoint reports any failure
        return f"{type(exc).__name__}: {exc}".strip()
    return None


async def _trickle():  # one byte a second, forever
    while True:
        yield b" "
        await asyncio.sleep(1)


@app.get("/health")
async def health():
    if _fault("health-hang"):
        await asyncio.sleep(3600)
    if _fault("health-trickle"):
        return StreamingResponse(_trickle(), media_type="application/json")
    if _fault("health-500"):
        return JSONResponse({"status": "error", "detail": "injected fault"}, status_code=500)
    error = await asyncio.to_thread(_database_ok)
    if error:
        return JSONResponse({"status": "unhealthy", "database": error}, status_code=503)
    return {"status": "ok"}


@app.get("/api/schedule")
async def schedule():
    return {"residents": [], "blocks": []}
