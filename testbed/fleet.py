"""Many testbed stacks at once: projects PREFIX01..PREFIXnn on ports BASE+i.

``python -m testbed fleet up N DIR`` brings up N testbed copies (distinct compose
projects, a few at a time) and writes one stack file per copy into DIR, ready
for ``pytest checks/ --stack DIR``; ``fleet down N`` removes them. Each copy is
the testbed as it is (about 95 MB: backend ~28 MB, PostgreSQL ~66 MB with its
tmpfs data directory).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from testbed.stack import Testbed, TestbedError

PREFIX = "sc-fleet-"
BACKEND_BASE = 19000
DB_BASE = 19500
UP_ATTEMPTS = 3
AT_ONCE = 4
# db's healthcheck runs an exec in the container: every 2 s in 32 copies is 16
# execs a second on the engine, which every check then waits behind.
HEALTH_INTERVAL = "10s"  # compose ups in parallel: initdb is CPU-bound on 2 cores


def beds(
    count: int, prefix: str = PREFIX, backend_base: int = BACKEND_BASE, db_base: int = DB_BASE
) -> list[Testbed]:
    """Testbeds 1..count: project PREFIX01, backend on BACKEND_BASE+1, db on DB_BASE+1, ..."""
    if not 1 <= count <= 99:
        raise TestbedError(f"a fleet has 1 to 99 stacks, not {count}")
    return [
        Testbed(
            project=f"{prefix}{i:02d}",
            backend_port=backend_base + i,
            db_port=db_base + i,
            health_interval=HEALTH_INTERVAL,
        )
        for i in range(1, count + 1)
    ]


def _each(fleet: list[Testbed], action: Callable[[Testbed], None]) -> list[str]:
    """Run action on every bed, AT_ONCE at a time; one line per failure."""

    def one(bed: Testbed) -> str | None:
        try:
            action(bed)
        except TestbedError as exc:
            return f"{bed.project}: {exc}"
        return None

    if fleet:
        fleet[0].images()  # build or reuse once, before the parallel part
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return [problem for problem in pool.map(one, fleet) if problem]


def _up(bed: Testbed) -> None:
    # compose v1 gives up on `depends_on: service_healthy` when db's first
    # healthcheck is late (initdb on a loaded machine): that bed is tried again.
    for attempt in range(UP_ATTEMPTS):
        try:
            bed.up()
            return
        except TestbedError:
            if attempt == UP_ATTEMPTS - 1:
                raise


def up(fleet: list[Testbed], directory: Path | None = None) -> list[Path]:
    """Bring every bed up (healthy); write their stack files into directory."""
    problems = _each(fleet, _up)
    if problems:
        raise TestbedError("; ".join(problems))
    if directory is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    return [bed.write_stack_file(directory / f"{bed.project}.toml") for bed in fleet]


def down(fleet: list[Testbed]) -> None:
    problems = _each(fleet, Testbed.down)
    if problems:
        raise TestbedError("; ".join(problems))
