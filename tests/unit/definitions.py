"""The real checks' definitions, read from checks/*.py: no test keeps a table of its own.

The modules are imported by file path under a private name, so they never meet
pytest's own import of checks/ (as ``test_container``...) in ``sys.modules``.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

from stackcheck.definition import Check, definition_of

CHECKS_DIR = Path(__file__).resolve().parent.parent.parent / "checks"
PREFIX = "_stackcheck_unit_definitions_"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(PREFIX + path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _definitions() -> tuple[Check, ...]:
    found: list[Check] = []
    for path in sorted(CHECKS_DIR.glob("test_*.py")):
        module = _load(path)
        for value in vars(module).values():
            check = definition_of(value)
            # A function imported from another check module is that module's check.
            if check is not None and getattr(value, "__module__", None) == module.__name__:
                found.append(check)
    if not found:
        raise LookupError(f"no @check definitions in {CHECKS_DIR}")
    return tuple(found)


def definitions() -> dict[str, Check]:
    """Every real check by name, in file order (checks/test_*.py sorted by name)."""
    found: dict[str, Check] = {}
    for check in _definitions():
        if check.name in found:
            raise LookupError(f"two checks are named {check.name}")
        found[check.name] = check
    return found
