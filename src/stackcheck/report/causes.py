"""Root cause before consequences: which failure explains which.

A failure is explained by another when the other sits beneath it: lower in the
check layers (catalogue.Layer) on the same service or edge, on a service it
depends on, or on the ends of a network edge. Rules, A explains B:

1. same service (or same edge): A's (layer, rank) is lower than B's;
2. B on service S at readiness or above, A on a service S depends on (at any
   depth), A not a logs check: the dependency's fault shows through S;
3. B on service S at readiness or above, A a network check from S or from a
   service S depends on: S cannot reach what it needs;
4. B a network check S->T: A is a container check of S (nothing runs from a
   stopped container), or a check of T in a layer B relies on (catalogue
   ``target_layers``: a stopped target drops out of DNS; a hung process leaves
   its port unanswered);
5. A a check of the Docker host (layer HOST), B a check of any service below
   the network layer (container, resources, readiness): every container stands
   on the host's engine, disk and memory. What B explains in turn follows by
   the other rules.

Blind spots ("could not check") take no part: they say nothing of the stack.

A container failure of S is never blamed on another service, so two independent
faults stay two root causes. Each consequence names one root cause: of the roots
that explain it (through any chain), the first in ``order``: a dependency's
fault before its dependent's, lower layers first.

Replicas. A service that runs several containers has its container-level checks
run per replica (``backend#2``). A check failing on *every* replica is the
service's failure, and explains as above (a consequence on replica N names the
root on replica N). A check failing on only some replicas is a partial outage:
it explains only failures of the same replica (its own higher layers, the
network checks from it); never a check of the service as a whole
(``http_health``), nor another service. It is a root cause of its own, and
failures of the service as a whole stay root causes beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from stackcheck.config import Service, Stack
from stackcheck.definition import Check, Layer
from stackcheck.model import HOST, CheckRef
from stackcheck.report import graph

Checks = Mapping[CheckRef, Check]  # each failing check's definition


def order(stack: Stack, ref: CheckRef, check: Check) -> tuple[int | str, ...]:
    """Sort key: deeper services first, then layer, rank, check, target; file order on ties."""
    known = graph.of(stack)
    unknown = len(known.position)  # a service not in the stack file sorts last

    return (
        0 if ref.service == HOST else 1,  # the host beneath every service
        known.depth(ref.service),
        known.position.get(ref.service, unknown),
        check.layer,
        check.rank,
        ref.check,
        known.position.get(ref.target, unknown) if ref.target else -1,
    ) + (() if ref.replica is None else (ref.replica,))


def explains(stack: Stack, a: CheckRef, b: CheckRef, checks: Checks) -> bool:
    """Whether failure ``a`` accounts for failure ``b`` (see the module's rules)."""
    ea, eb = checks[a], checks[b]
    if b.target is None:
        if a.target is None and a.service == b.service:
            return (ea.layer, ea.rank) < (eb.layer, eb.rank)
        if a.service == HOST:  # rule 5
            return _on_the_host(eb)
        if eb.layer < Layer.READINESS:
            return False
        needs = graph.dependencies(stack, b.service)
        if a.target is None:
            return a.service in needs and ea.layer < Layer.LOGS
        return a.service == b.service or a.service in needs
    if a.target is None:
        return (a.service == b.service and ea.layer == Layer.CONTAINER) or (
            a.service == b.target and ea.layer in eb.target_layers
        )
    return (a.service, a.target) == (b.service, b.target) and ea.rank < eb.rank


@dataclass(frozen=True)
class Analysis:
    roots: list[CheckRef]  # in ``order``
    cause: dict[CheckRef, CheckRef]  # consequence -> its root cause

    def consequences(self, root: CheckRef) -> list[CheckRef]:
        return [c for c, r in self.cause.items() if r == root]


def whole(failures: Checks, replicas: Mapping[str, int] | None = None) -> set[CheckRef]:
    """The failures of one replica whose check fails on every replica of the service.

    ``replicas``: how many containers each scaled service runs; by default, as
    many as have a failure here.
    """
    failing: dict[tuple[str, str | None, str], set[int]] = {}
    seen: dict[str, set[int]] = {}
    for ref in failures:
        if ref.replica is not None:
            failing.setdefault((ref.service, ref.target, ref.check), set()).add(ref.replica)
            seen.setdefault(ref.service, set()).add(ref.replica)
    counts = {s: len(n) for s, n in seen.items()}
    counts.update(replicas or {})
    return {
        ref
        for ref in failures
        if ref.replica is not None
        and len(failing[(ref.service, ref.target, ref.check)]) >= counts[ref.service]
    }


def analyse(stack: Stack, failures: Checks, replicas: Mapping[str, int] | None = None) -> Analysis:
    """Split one stack's failing checks into root causes and their consequences.

    ``replicas``: how many containers each scaled service runs (see the module).
    """
    partial = {ref for ref in failures if ref.replica is not None} - whole(failures, replicas)
    if not any(ref.replica is not None for ref in failures):
        return _analyse(stack, failures)
    # A failure of only some replicas sits on a service of its own, "backend#2",
    # that needs "backend" (so what explains the service explains it too) and
    # that nothing needs (so it explains nothing beyond itself).
    placed = {
        ref: replace(ref, service=ref.unit, replica=None) if ref in partial else ref
        for ref in failures
    }
    back = {v: k for k, v in placed.items()}
    services: dict[str, Service] = {}
    units = sorted({(ref.service, ref.replica or 0) for ref in partial})
    for name, service in stack.services.items():
        services[name] = service
        for owner, number in units:
            if owner == name:
                unit = f"{name}#{number}"
                services[unit] = Service(unit, depends_on=(name,))
    analysis = _analyse(
        replace(stack, services=services), {placed[r]: failures[r] for r in failures}
    )
    roots = sorted((back[r] for r in analysis.roots), key=lambda r: order(stack, r, failures[r]))
    rooted = set(roots)
    cause = {}
    for placed_ref, placed_root in analysis.cause.items():
        ref, root = back[placed_ref], back[placed_root]
        # The same fault on every replica: replica N's consequence names replica N's root.
        if ref.replica is not None and root.replica not in (None, ref.replica):
            own = replace(root, replica=ref.replica)
            if own in rooted:
                root = own
        cause[ref] = root
    return Analysis(roots=roots, cause=cause)


def _analyse(stack: Stack, failures: Checks) -> Analysis:
    """``analyse`` on failures placed on services (no replica left partial).

    The result is the one the rules give pair by pair (``explains``), with the
    roots searched through every chain of explanations, but reached in time
    near-linear in the failures: see ``_Explanations``.
    """
    keys = {ref: order(stack, ref, failures[ref]) for ref in failures}
    failing = sorted(failures, key=keys.__getitem__)
    net = _Explanations(stack, failing, failures)
    real = len(failing)
    explained = net.explained()
    # best[n]: the first (in ``order``) failure without an explanation that
    # explains n through some chain; ``real`` for none.
    best = net.first_upstream(lambda i: not explained[i])
    # A failure explained only within a circle (a depends_on cycle) stands alone
    # as a root cause; a later failure it explains then names it, or an earlier
    # root: whichever comes first in ``order``, an unexplained one on a tie.
    roots = [i for i in range(real) if not explained[i]]
    mark = [-1] * len(net.succ)  # the first such circle root upstream, once rooted
    cause: dict[CheckRef, CheckRef] = {}
    for i in range(real):
        if not explained[i]:
            continue
        first = best[i] if best[i] < real else None
        circle = mark[i] if mark[i] >= 0 else None
        if first is None and circle is None:
            roots.append(i)
            net.spread(i, mark)
        elif first is not None and (
            circle is None or keys[failing[first]] <= keys[failing[circle]]
        ):
            cause[failing[i]] = failing[first]
        elif circle is not None:
            cause[failing[i]] = failing[circle]
    return Analysis(roots=sorted((failing[i] for i in roots), key=keys.__getitem__), cause=cause)


class _Explanations:
    """Who explains whom, as a graph whose paths are exactly the rules' chains.

    Nodes 0..len(failing)-1 are the failures (in ``order``); the others stand
    for sets of failures ("failures on any service db needs", "container
    failures of backend"...). An edge u -> v says u's failures explain v's; a
    failure A reaches failure B through set nodes alone exactly when
    ``explains(A, B)``. A set such as "every service S needs" is built from its
    dependencies' sets, so a chain of a thousand services costs a thousand
    edges, not half a million pairs.
    """

    def __init__(self, stack: Stack, failing: list[CheckRef], checks: Checks) -> None:
        self.real = len(failing)
        self.succ: list[list[int]] = [[] for _ in failing]
        self._sets: dict[tuple[object, ...], int] = {}
        known = graph.of(stack)
        on_service: dict[str, list[int]] = {}
        on_edge: dict[tuple[str, str], list[int]] = {}
        for i, ref in enumerate(failing):
            if ref.target is None:
                on_service.setdefault(ref.service, []).append(i)
            else:
                on_edge.setdefault((ref.service, ref.target), []).append(i)

        # Rule 1, same service: a prefix chain over its (layer, rank) levels.
        for service, members in on_service.items():
            self._ladder(("level", service), members, lambda i: _level(checks[failing[i]]))
        # Rule 4, same edge: a prefix chain over the network checks' ranks.
        for edge, members in on_edge.items():
            self._ladder(("rank", edge), members, lambda i: (checks[failing[i]].rank,))

        # Rule 5: the host's failures explain what stands on it.
        for i in on_service.get(HOST, ()):
            self.edge(i, self.set("host"))
        for service, members in on_service.items():
            if service == HOST:
                continue
            for i in members:
                if _on_the_host(checks[failing[i]]):
                    self.edge(self.set("host"), i)

        # Sets each failure belongs to.
        for service, members in on_service.items():
            component = known.component.get(service)
            for i in members:
                layer = checks[failing[i]].layer
                self.edge(i, self.set("layer", service, layer))  # rule 4: target's layers
                if layer == Layer.CONTAINER:
                    self.edge(i, self.set("container", service))  # rule 4: source's container
                if layer < Layer.LOGS and component is not None:  # rule 2
                    self.edge(i, self.set("all needs", component))
                    if known.cyclic[component]:
                        at = known.place[service]
                        self.edge(i, self.set("before", component, at))
                        self.edge(i, self.set("after", component, at))
        for (service, _), members in on_edge.items():
            for i in members:
                self.edge(i, self.set("edges from", service))  # rule 3
        for service in dict.fromkeys(s for s, _ in on_edge):
            component = known.component.get(service)
            if component is not None:
                self.edge(self.set("edges from", service), self.set("all edges", component))

        # Closures over the services' components, dependencies first: "all" is a
        # component and everything it needs, "out" only what it needs.
        for component, needs in enumerate(known.component_needs):
            for kind in ("needs", "edges"):
                out = self.set(f"out {kind}", component)
                for need in needs:
                    self.edge(self.set(f"all {kind}", need), out)
                self.edge(out, self.set(f"all {kind}", component))
            if known.cyclic[component]:
                # Within a cycle a service needs every other member (rule 2 never
                # pairs a service with itself): prefixes and suffixes in file order.
                size = len(known.components[component])
                for at in range(1, size):
                    self.edge(
                        self.set("before", component, at - 1), self.set("before", component, at)
                    )
                    self.edge(
                        self.set("after", component, at), self.set("after", component, at - 1)
                    )

        # What explains each failure.
        for i, ref in enumerate(failing):
            check = checks[ref]
            if ref.target is not None:  # rule 4
                self.edge(self.set("container", ref.service), i)
                for layer in dict.fromkeys(check.target_layers):
                    self.edge(self.set("layer", ref.target, layer), i)
                continue
            if check.layer < Layer.READINESS:
                continue
            self.edge(self.set("edges from", ref.service), i)  # rule 3, S itself
            component = known.component.get(ref.service)
            if component is None:  # not in the stack file: needs nothing
                continue
            self.edge(self.set("out needs", component), i)  # rule 2
            if known.cyclic[component]:
                # S needs itself: every edge of the cycle, every other member's failures.
                self.edge(self.set("all edges", component), i)
                at = known.place[ref.service]
                if at > 0:
                    self.edge(self.set("before", component, at - 1), i)
                if at + 1 < len(known.components[component]):
                    self.edge(self.set("after", component, at + 1), i)
            else:
                self.edge(self.set("out edges", component), i)  # rule 3

    def set(self, *name: object) -> int:
        found = self._sets.get(name)
        if found is None:
            found = self._sets[name] = len(self.succ)
            self.succ.append([])
        return found

    def edge(self, source: int, target: int) -> None:
        self.succ[source].append(target)

    def _ladder(
        self, name: tuple[object, ...], members: list[int], level: Callable[[int], tuple[int, ...]]
    ) -> None:
        """Each member explained by the members of strictly lower level."""
        levels = sorted({level(i) for i in members})
        step = {value: at for at, value in enumerate(levels)}
        for at in range(1, len(levels)):
            self.edge(self.set(*name, at - 1), self.set(*name, at))
        for i in members:
            at = step[level(i)]
            self.edge(i, self.set(*name, at))
            if at > 0:
                self.edge(self.set(*name, at - 1), i)

    def explained(self) -> list[bool]:
        """Whether each failure has a failure that explains it directly."""
        inhabited = [False] * len(self.succ)  # a set with a failure in it
        todo = []
        explained = [False] * self.real
        for u in range(self.real):
            for v in self.succ[u]:
                if v < self.real:
                    explained[v] = True
                elif not inhabited[v]:
                    inhabited[v] = True
                    todo.append(v)
        while todo:
            for v in self.succ[todo.pop()]:
                if v < self.real:
                    explained[v] = True
                elif not inhabited[v]:
                    inhabited[v] = True
                    todo.append(v)
        return explained

    def first_upstream(self, candidate: Callable[[int], bool]) -> list[int]:
        """For each node, the lowest candidate failure with a path to it (``real``: none).

        Over the strongly connected components, sources first: a circle of
        explanations shares what reaches any of its members.
        """
        best = [self.real] * len(self.succ)
        for component in reversed(self._components()):
            value = min(best[n] for n in component)
            inside = set(component) if len(component) > 1 else None
            for n in component:
                best[n] = value
                out = min(value, n) if n < self.real and candidate(n) else value
                if out == self.real:
                    continue
                for m in self.succ[n]:
                    if (inside is None or m not in inside) and out < best[m]:
                        best[m] = out
        return best

    def _components(self) -> list[list[int]]:
        """Tarjan's strongly connected components, iterative; sinks first."""
        count = len(self.succ)
        index = [-1] * count
        low = [0] * count
        on_stack = [False] * count
        stack: list[int] = []
        found: list[list[int]] = []
        counter = 0
        for start in range(count):
            if index[start] >= 0:
                continue
            index[start] = low[start] = counter
            counter += 1
            stack.append(start)
            on_stack[start] = True
            frames = [(start, iter(self.succ[start]))]
            while frames:
                node, children = frames[-1]
                child = next(children, -1)
                if child >= 0:
                    if index[child] < 0:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack[child] = True
                        frames.append((child, iter(self.succ[child])))
                    elif on_stack[child]:
                        low[node] = min(low[node], index[child])
                    continue
                frames.pop()
                if frames:
                    parent = frames[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack[member] = False
                        members.append(member)
                        if member == node:
                            break
                    found.append(members)
        return found

    def spread(self, root: int, mark: list[int]) -> None:
        """Mark everything ``root`` explains through any chain, unless marked before.

        What is marked already was marked with all it explains, by an earlier root.
        """
        mark[root] = root
        todo = [root]
        while todo:
            for m in self.succ[todo.pop()]:
                if mark[m] < 0:
                    mark[m] = root
                    todo.append(m)


def _on_the_host(check: Check) -> bool:
    """A service's check a failing host explains (rule 5)."""
    return Layer.CONTAINER <= check.layer < Layer.NETWORK


def _level(check: Check) -> tuple[int, ...]:
    return (check.layer, check.rank)
