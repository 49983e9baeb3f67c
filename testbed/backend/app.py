"""A minimal Residency Scheduler backend: just enough API to be checked.

Faults are switched by files under /run/faults, written with ``docker exec``
by testbed/stack.py, so the code under test is the same in every scenario.
"""

import asyncio
import os
import threading
import time
from pathlib import Path

import psycopg
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

FAULTS = Path("/run/faults")
DATABASE_URL = os.environ["DATABASE_URL"]

app = FastAPI(title="Residency Scheduler (testbed)")


def _oom_watcher() -> None:
    """The backend-oom-killed fault: once /run/faults/oom appears, grow until killed.

    The file is deleted *before* allocating, so the restart that the restart
    policy makes after the kernel's OOM kill comes up clean: one kill, no loop.
    """
    trigger = FAULTS / "oom"
    while True:
        if trigger.exists():
            trigger.unlink(missing_ok=True)
            hog = []
            while True:  # every page is written, so all of it counts against mem_limit
                hog.append(b"\x01" * (8 << 20))
        time.sleep(0.2)


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
