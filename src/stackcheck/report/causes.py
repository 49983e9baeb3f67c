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
   its port unanswered).

Blind spots ("could not check") take no part: they say nothing of the stack.

A container failure of S is never blamed on another service, so two independent
faults stay two root causes. Each consequence names one root cause: of the roots
that explain it (through any chain), the first in ``order``: a dependency's
fault before its dependent's, lower layers first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stackcheck.config import Stack
from stackcheck.definition import Check, Layer
from stackcheck.model import CheckRef
from stackcheck.report import graph

Checks = Mapping[CheckRef, Check]  # each failing check's definition


def order(stack: Stack, ref: CheckRef, check: Check) -> tuple[int | str, ...]:
    """Sort key: deeper services first, then layer, rank, check, target; file order on ties."""
    services = list(stack.services)

    def position(service: str | None) -> int:
        return services.index(service) if service in services else len(services)

    return (
        graph.depth(stack, ref.service),
        position(ref.service),
        check.layer,
        check.rank,
        ref.check,
        position(ref.target) if ref.target else -1,
    )


def explains(stack: Stack, a: CheckRef, b: CheckRef, checks: Checks) -> bool:
    """Whether failure ``a`` accounts for failure ``b`` (see the module's rules)."""
    ea, eb = checks[a], checks[b]
    if b.target is None:
        if a.target is None and a.service == b.service:
            return (ea.layer, ea.rank) < (eb.layer, eb.rank)
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


def analyse(stack: Stack, failures: Checks) -> Analysis:
    """Split one stack's failing checks into root causes and their consequences."""

    def key(ref: CheckRef) -> tuple[int | str, ...]:
        return order(stack, ref, failures[ref])

    failing = sorted(failures, key=key)
    explainers = {
        b: [a for a in failing if a != b and explains(stack, a, b, failures)] for b in failing
    }
    roots = [f for f in failing if not explainers[f]]
    cause: dict[CheckRef, CheckRef] = {}
    for f in failing:
        if f in roots:
            continue
        seen: set[CheckRef] = set()
        todo = list(explainers[f])
        while todo:
            a = todo.pop()
            if a not in seen:
                seen.add(a)
                todo.extend(explainers[a])
        reachable = [r for r in roots if r in seen]
        if reachable:
            cause[f] = min(reachable, key=key)
        else:
            # Only explained within a circle (a depends_on cycle): stands alone.
            roots.append(f)
    return Analysis(roots=sorted(roots, key=key), cause=cause)
