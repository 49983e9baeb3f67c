"""Cause analysis at scale: ``causes.analyse`` on large stacks, every check failing.

Builds the inputs directly (no pytest run, no Docker): a stack of N services
whose ``depends_on`` form a chain (each service needs the one before it) or a
star (every service needs the first one), and every one of the real checks
(checks/*.py) failing on every service and on every dependency edge. Prints the
wall time of ``analyse`` and of sorting those failures by ``causes.order`` (what
``report.run.build`` does with each stack's rows). It reports figures; it never
fails.

    .venv/bin/python bench/causes_scale.py                 # 250, 500, 1000 services
    .venv/bin/python bench/causes_scale.py --sizes 250 500 --shapes chain
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(
    0, str(ROOT / "tests" / "unit")
)  # the real definitions, as the unit tests load them

from definitions import definitions  # noqa: E402

from stackcheck.config import Service, Stack  # noqa: E402
from stackcheck.definition import Check, Scope  # noqa: E402
from stackcheck.model import CheckRef  # noqa: E402
from stackcheck.report import causes  # noqa: E402


def stack_of(size: int, shape: str) -> Stack:
    names = [f"s{i}" for i in range(size)]
    services = {}
    for i, name in enumerate(names):
        if i == 0:
            needs: tuple[str, ...] = ()
        elif shape == "chain":
            needs = (names[i - 1],)
        else:  # star: everything needs the first service
            needs = (names[0],)
        services[name] = Service(name, depends_on=needs)
    return Stack(Path("scale.toml"), "scale", "scale", services)


def all_failing(stack: Stack) -> dict[CheckRef, Check]:
    """Every real check failing everywhere it could run (``applies`` ignored)."""
    failing: dict[CheckRef, Check] = {}
    for check in definitions().values():
        if check.scope is Scope.EDGE:
            for source, target in stack.edges():
                failing[CheckRef(stack.name, check.name, source, target)] = check
        else:
            for service in stack.services:
                failing[CheckRef(stack.name, check.name, service)] = check
    return failing


def timed(work: Callable[[], object]) -> tuple[float, float] | str:
    """Wall and CPU seconds of ``work``, or why it failed."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        work()
    except RecursionError:  # the walks before the rework recursed once per service
        return "RecursionError"
    return time.perf_counter() - wall, time.process_time() - cpu


def shown(result: tuple[float, float] | str) -> str:
    return f"{result[0]:>8.2f} {result[1]:>8.2f}" if isinstance(result, tuple) else result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--shapes", nargs="+", default=["chain", "star"])
    args = parser.parse_args()
    print(f"{len(definitions())} checks; Python {sys.version.split()[0]}; seconds wall and CPU")
    print(
        f"{'shape':<6} {'services':>8} {'failures':>8}   analyse: wall      cpu   order: wall      cpu"
    )
    for shape in args.shapes:
        for size in args.sizes:
            print(row(shape, size), flush=True)


def row(shape: str, size: int) -> str:
    stack = stack_of(size, shape)
    failing = all_failing(stack)
    analysed = timed(lambda: causes.analyse(stack, failing))
    # What report.run.build does next with the stack's rows.
    ordered = timed(lambda: sorted(failing, key=lambda r: causes.order(stack, r, failing[r])))
    return f"{shape:<6} {size:>8} {len(failing):>8}   {shown(analysed):>17}   {shown(ordered):>17}"


if __name__ == "__main__":
    main()
