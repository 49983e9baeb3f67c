"""The ``depends_on`` graph of a stack, as the hints and the causality need it.

Each stack's graph is computed once (``of``) and reused by every call: the cause
analysis and the report's ordering ask for every failure's depth, and a stack of
a thousand services must not cost a walk of the whole graph per question. A
``Stack`` is frozen once loaded; the memo is keyed by the object and dropped
with it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

from stackcheck.config import Service, Stack


class Graph:
    """One stack's ``depends_on`` graph: positions, depths, needs, components."""

    def __init__(self, services: Mapping[str, Service]) -> None:
        self._services = services
        self.position = {name: i for i, name in enumerate(services)}  # file order
        # Names that are not services of the stack are no part of the graph.
        self._needs = {
            name: tuple(d for d in service.depends_on if d in services)
            for name, service in services.items()
        }
        self._dependencies: dict[str, frozenset[str]] = {}
        # Keyed by any name in a depends_on, a service of the stack or not.
        self._dependents: dict[str, list[str]] = {}
        for service in services.values():
            for dep in dict.fromkeys(service.depends_on):  # once per dependent, in file order
                self._dependents.setdefault(dep, []).append(service.name)
        self._components()
        self._depths()

    def _components(self) -> None:
        """Strongly connected components (Tarjan, iterative), dependencies first."""
        self.components: list[tuple[str, ...]] = []
        self.component: dict[str, int] = {}
        self.place: dict[str, int] = {}  # a service's index in its component
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        for start in self._services:
            if start in index:
                continue
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            frames = [(start, iter(self._needs[start]))]
            while frames:
                name, deps = frames[-1]
                dep = next(deps, None)
                if dep is not None:
                    if dep not in index:
                        index[dep] = low[dep] = len(index)
                        stack.append(dep)
                        on_stack.add(dep)
                        frames.append((dep, iter(self._needs[dep])))
                    elif dep in on_stack:
                        low[name] = min(low[name], index[dep])
                    continue
                frames.pop()
                if frames:
                    parent = frames[-1][0]
                    low[parent] = min(low[parent], low[name])
                if low[name] == index[name]:
                    popped: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        popped.append(member)
                        if member == name:
                            break
                    number = len(self.components)
                    # Members in file order: the analysis enumerates them.
                    ordered = tuple(sorted(popped, key=self.position.__getitem__))
                    self.components.append(ordered)
                    for place, member in enumerate(ordered):
                        self.component[member] = number
                        self.place[member] = place
        # A component is a cycle when it has several services or one needs itself.
        self.cyclic = [len(c) > 1 or c[0] in self._needs[c[0]] for c in self.components]
        # The components each component needs directly (all earlier in the list).
        self.component_needs: list[tuple[int, ...]] = []
        for number, members in enumerate(self.components):
            found = {self.component[d] for m in members for d in self._needs[m]} - {number}
            self.component_needs.append(tuple(sorted(found)))

    def _depths(self) -> None:
        # A service from which no cycle can be reached has one depth, whatever the
        # walk that reaches it: those are computed once, dependencies first.
        reaches_cycle = list(self.cyclic)
        for number, needs in enumerate(self.component_needs):
            reaches_cycle[number] = reaches_cycle[number] or any(reaches_cycle[n] for n in needs)
        self._fixed: dict[str, int] = {}
        for number, members in enumerate(self.components):
            if not reaches_cycle[number]:
                (name,) = members
                deps = self._services[name].depends_on
                # A name that is not a service counts 0, as in the walk.
                self._fixed[name] = 1 + max(self._fixed.get(d, 0) for d in deps) if deps else 0
        self._walked: dict[str, int] = {}  # services that reach a cycle, once asked for

    def depth(self, service: str) -> int:
        """0 for a service that needs nothing, else one more than its deepest need.

        Within a ``depends_on`` cycle the walk stops where it meets itself: the
        depth is that of the longest path that repeats no service.
        """
        if service not in self._services:
            return 0
        found = self._fixed.get(service)
        if found is None:
            found = self._walked.get(service)
        if found is None:
            found = self._walked[service] = self._longest(service)
        return found

    def _longest(self, start: str) -> int:
        """The longest path from ``start`` that repeats no service, walked.

        Iterative, so a long chain cannot exhaust the interpreter's recursion
        limit. Services beyond every cycle come from the memo; the others depend
        on the path that reaches them, so they are walked again (exponential in
        a dense cycle, as it always was: the longest simple path is NP-hard).
        """
        services = self._services
        on_path = {start}
        # (service, its depends_on not yet walked (reversed), [deepest walked])
        frames = [(start, list(reversed(services[start].depends_on)), [0])]
        while True:
            name, todo, deepest = frames[-1]
            if todo:
                dep = todo.pop()
                if dep in on_path or dep not in services:
                    deepest[0] = max(deepest[0], 0)
                elif dep in self._fixed:
                    deepest[0] = max(deepest[0], self._fixed[dep])
                else:
                    on_path.add(dep)
                    frames.append((dep, list(reversed(services[dep].depends_on)), [0]))
                continue
            frames.pop()
            on_path.discard(name)
            value = 1 + deepest[0] if services[name].depends_on else 0
            if not frames:
                return value
            parent = frames[-1][2]
            parent[0] = max(parent[0], value)

    def dependencies(self, service: str) -> frozenset[str]:
        """Every service ``service`` needs, directly or through others."""
        found = self._dependencies.get(service)
        if found is None:
            seen: set[str] = set()
            todo = list(self._needs.get(service, ()))
            while todo:
                name = todo.pop()
                if name not in seen:
                    seen.add(name)
                    todo.extend(self._needs[name])
            found = self._dependencies[service] = frozenset(seen)
        return found

    def dependents(self, service: str) -> list[str]:
        """Services that depend directly on ``service``, in file order."""
        return list(self._dependents.get(service, ()))


_GRAPHS: dict[int, tuple[weakref.ref[Stack], Graph]] = {}


def of(stack: Stack) -> Graph:
    """``stack``'s graph, computed on first use and kept while the stack lives."""
    key = id(stack)
    entry = _GRAPHS.get(key)
    if entry is not None and entry[0]() is stack:
        return entry[1]
    built = Graph(stack.services)
    # The entry goes with the stack, before its id can be reused.
    _GRAPHS[key] = (weakref.ref(stack, lambda _: _GRAPHS.pop(key, None)), built)
    return built


def dependencies(stack: Stack, service: str) -> set[str]:
    """Every service ``service`` needs, directly or through others."""
    return set(of(stack).dependencies(service))


def dependents(stack: Stack, service: str) -> list[str]:
    """Services that depend directly on ``service``, in file order."""
    return of(stack).dependents(service)


def depth(stack: Stack, service: str) -> int:
    """0 for a service that needs nothing, else one more than its deepest need."""
    return of(stack).depth(service)
