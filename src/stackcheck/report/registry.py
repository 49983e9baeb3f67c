"""The stacks of this pytest process, as ``register()`` announced them.

``hints.decorate()`` receives nothing but a report, yet needs what only the stack
file knows (passwords to hide, who depends on a service, the Docker host); so
``register()`` leaves it here, in every process (controller and xdist workers).
"""

from __future__ import annotations

from collections.abc import Iterable

from stackcheck.config import Stack

_stacks: dict[str, Stack] = {}
_secrets: set[str] = set()


def remember(stacks: Iterable[Stack]) -> None:
    """Replace what is known: each pytest session registers its own stacks."""
    _stacks.clear()
    _stacks.update((s.name, s) for s in stacks)
    _secrets.clear()
    _secrets.update(secret for s in _stacks.values() for secret in s.secrets())


def stacks() -> list[Stack]:
    return list(_stacks.values())


def stack(name: str) -> Stack | None:
    return _stacks.get(name)


def secrets() -> set[str]:
    return set(_secrets)
