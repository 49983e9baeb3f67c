"""The ``depends_on`` graph of a stack, as the hints and the causality need it."""

from __future__ import annotations

from stackcheck.config import Stack


def dependencies(stack: Stack, service: str) -> set[str]:
    """Every service ``service`` needs, directly or through others."""
    found: set[str] = set()
    todo = list(stack.services[service].depends_on) if service in stack.services else []
    while todo:
        name = todo.pop()
        if name not in found and name in stack.services:
            found.add(name)
            todo.extend(stack.services[name].depends_on)
    return found


def dependents(stack: Stack, service: str) -> list[str]:
    """Services that depend directly on ``service``, in file order."""
    return [s.name for s in stack.services.values() if service in s.depends_on]


def depth(stack: Stack, service: str) -> int:
    """0 for a service that needs nothing, else one more than its deepest need."""
    seen: set[str] = set()

    def walk(name: str) -> int:
        if name in seen or name not in stack.services:  # a cycle ends the walk
            return 0
        seen.add(name)
        deps = stack.services[name].depends_on
        result = 1 + max(map(walk, deps)) if deps else 0
        seen.discard(name)
        return result

    return walk(service)
