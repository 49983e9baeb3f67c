"""The cause analysis against its rules taken pair by pair, on thousands of random stacks.

``analyse`` finds roots through a graph of sets of failures (near-linear); the
oracle below is the straightforward code it replaced, kept verbatim in spirit:
every failure tested against every other with ``explains``, each failure's
chains walked, roots chosen as they were. Random stacks (DAGs, cycles, services
that need themselves or a name not in the file, file order unrelated to the
graph) and random failing sets over the real check definitions must give the
same roots in the same order and the same consequence -> cause map, in the same
order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

from definitions import definitions

from stackcheck.config import Service, Stack
from stackcheck.definition import Check, Layer, Scope
from stackcheck.model import HOST, CheckRef
from stackcheck.report import graph
from stackcheck.report.causes import analyse, order

CHECKS = definitions()
NODE_CHECKS = [c for c in CHECKS.values() if c.scope is Scope.SERVICE]
EDGE_CHECKS = [c for c in CHECKS.values() if c.scope is Scope.EDGE]
CASES = 3000
Checks = Mapping[CheckRef, Check]


# The oracle: the analysis as it was before it was made near-linear.


def old_dependencies(stack: Stack, service: str) -> set[str]:
    found: set[str] = set()
    todo = list(stack.services[service].depends_on) if service in stack.services else []
    while todo:
        name = todo.pop()
        if name not in found and name in stack.services:
            found.add(name)
            todo.extend(stack.services[name].depends_on)
    return found


def old_depth(stack: Stack, service: str) -> int:
    seen: set[str] = set()

    def walk(name: str) -> int:
        if name in seen or name not in stack.services:
            return 0
        seen.add(name)
        deps = stack.services[name].depends_on
        result = 1 + max(map(walk, deps)) if deps else 0
        seen.discard(name)
        return result

    return walk(service)


def old_order(stack: Stack, ref: CheckRef, check: Check) -> tuple[int | str, ...]:
    services = list(stack.services)

    def position(service: str | None) -> int:
        return services.index(service) if service in services else len(services)

    return (
        0 if ref.service == HOST else 1,  # the host's checks first, beneath every service
        old_depth(stack, ref.service),
        position(ref.service),
        check.layer,
        check.rank,
        ref.check,
        position(ref.target) if ref.target else -1,
    )


def old_explains(needs_of: dict[str, set[str]], a: CheckRef, b: CheckRef, checks: Checks) -> bool:
    ea, eb = checks[a], checks[b]
    if b.target is None:
        if a.target is None and a.service == b.service:
            return (ea.layer, ea.rank) < (eb.layer, eb.rank)
        if eb.layer < Layer.READINESS:
            return False
        needs = needs_of[b.service]
        if a.target is None:
            return a.service in needs and ea.layer < Layer.LOGS
        return a.service == b.service or a.service in needs
    if a.target is None:
        return (a.service == b.service and ea.layer == Layer.CONTAINER) or (
            a.service == b.target and ea.layer in eb.target_layers
        )
    return (a.service, a.target) == (b.service, b.target) and ea.rank < eb.rank


def old_analyse(
    stack: Stack, failures: Checks
) -> tuple[list[CheckRef], list[tuple[CheckRef, CheckRef]], int]:
    """Roots, consequence -> cause in insertion order, and how many roots only a circle explains."""
    # graph.dependencies per pair, as it was, only looked up once per service.
    needs_of = {r.service: old_dependencies(stack, r.service) for r in failures}
    keys = {r: old_order(stack, r, failures[r]) for r in failures}

    def key(ref: CheckRef) -> tuple[int | str, ...]:
        return keys[ref]

    failing = sorted(failures, key=key)
    explainers = {
        b: [a for a in failing if a != b and old_explains(needs_of, a, b, failures)]
        for b in failing
    }
    roots = [f for f in failing if not explainers[f]]
    unexplained = len(roots)
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
            roots.append(f)
    return sorted(roots, key=key), list(cause.items()), len(roots) - unexplained


# Random cases.


def random_stack(rng: random.Random, case: int, knotted: bool) -> Stack:
    """2-40 services; a DAG, often with back edges (cycles), self-needs, unknown names."""
    if knotted:  # small, many cycles
        size, back = rng.randint(2, 6), 0.6
    else:
        size = rng.choice([rng.randint(2, 8), rng.randint(2, 20), rng.randint(2, 40)])
        # Chance of edges against the DAG order (cycles); dense cycles in small stacks
        # only: a service's depth in a cycle is its longest simple path, exponential.
        back = rng.choice([0.0, 0.0, 0.02, 0.1, 0.3]) * (1.0 if size <= 12 else 0.3)
    names = [f"s{i}" for i in range(size)]
    density = rng.choice([0.05, 0.15, 0.3, 0.6])
    needs: dict[str, list[str]] = {name: [] for name in names}
    for i, name in enumerate(names):
        for j, other in enumerate(names):
            # Forward (earlier in the DAG order) with ``density``, backward with ``back``.
            chance = density / max(1, i) * 3 if j < i else back / size * 3 if j > i else 0.0
            if rng.random() < chance:
                needs[name].append(other)
        if rng.random() < 0.03:
            needs[name].append(name)  # needs itself
        if rng.random() < 0.03:
            needs[name].append("ghost")  # not a service of the stack
        if rng.random() < 0.02 and needs[name]:
            needs[name].append(needs[name][0])  # listed twice
        rng.shuffle(needs[name])
    file_order = list(names)
    rng.shuffle(file_order)  # file order unrelated to the graph
    services = {name: Service(name, depends_on=tuple(needs[name])) for name in file_order}
    return Stack(Path("random.toml"), f"random{case}", "random", services)


def random_failures(rng: random.Random, stack: Stack, high: bool) -> dict[CheckRef, Check]:
    """A random failing set: by check, by service, or everywhere, sometimes off the graph."""
    possible = [CheckRef(stack.name, c.name, s) for c in NODE_CHECKS for s in stack.services] + [
        CheckRef(stack.name, c.name, s, t) for c in EDGE_CHECKS for s, t in stack.edges()
    ]
    # Edge checks off the depends_on edges and services not in the file: what an
    # unregistered stack's results (analysed with no services) look like.
    names = [*stack.services, "ghost", "other"]
    for _ in range(rng.choice([0, 0, 2, 8])):
        possible.append(CheckRef(stack.name, rng.choice(EDGE_CHECKS).name, *rng.sample(names, 2)))
    for _ in range(rng.choice([0, 0, 2])):
        possible.append(CheckRef(stack.name, rng.choice(NODE_CHECKS).name, "ghost"))
    if high:
        # Readiness and above only, on services: what chains around a depends_on
        # cycle and leaves failures that only a circle explains.
        possible = [
            r for r in possible if r.target is None and CHECKS[r.check].layer >= Layer.READINESS
        ]
    density = rng.choice([0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0])
    limit = rng.choice([15, 30, 80])  # keeps the oracle's all pairs affordable
    chosen = [r for r in dict.fromkeys(possible) if rng.random() < density]
    rng.shuffle(chosen)  # dict order breaks ties in ``order``: vary it
    return {r: CHECKS[r.check] for r in chosen[:limit]}


def case(number: int) -> tuple[Stack, dict[CheckRef, Check]]:
    rng = random.Random(number)
    # Small knotted stacks with failures at readiness and above only: where a
    # circle of failures explains itself and nothing else explains it.
    knotted = rng.random() < 0.2
    stack = random_stack(rng, number, knotted)
    failures = random_failures(rng, stack, high=rng.random() < (0.7 if knotted else 0.2))
    if rng.random() < 0.05:  # an unregistered stack's results: analysed with no graph
        stack = Stack(Path(), stack.name, stack.name, {})
    return stack, failures


def describe(stack: Stack, failures: Checks) -> str:
    needs = {name: list(s.depends_on) for name, s in stack.services.items()}
    return f"depends_on {needs}; failing {[r.key for r in failures]}"


def test_analyse_matches_the_pairwise_rules_on_random_stacks() -> None:
    cyclic = with_consequences = with_circle_roots = 0
    for number in range(CASES):
        stack, failures = case(number)
        roots, cause, circle_roots = old_analyse(stack, failures)
        got = analyse(stack, failures)
        assert got.roots == roots, f"case {number}: {describe(stack, failures)}"
        assert list(got.cause.items()) == cause, f"case {number}: {describe(stack, failures)}"
        cyclic += any(s in old_dependencies(stack, s) for s in stack.services)
        with_consequences += bool(cause)
        with_circle_roots += bool(circle_roots)
    # The cases reach what they are for: cycles, consequences, roots only a circle explains.
    assert cyclic > CASES // 10, cyclic
    assert with_consequences > CASES // 2, with_consequences
    assert with_circle_roots > CASES // 40, with_circle_roots


def test_graph_and_order_match_the_walks_they_replace() -> None:
    for number in range(0, CASES, 5):
        stack, failures = case(number)
        for service in [*stack.services, "ghost"]:
            where = f"case {number}, {service}"
            assert graph.depth(stack, service) == old_depth(stack, service), where
            assert graph.dependencies(stack, service) == old_dependencies(stack, service), where
            assert graph.dependents(stack, service) == [
                s.name for s in stack.services.values() if service in s.depends_on
            ], where
        for ref, check in failures.items():
            assert order(stack, ref, check) == old_order(stack, ref, check), f"case {number}"


def test_a_tie_in_order_names_the_unexplained_root_before_a_circle() -> None:
    # Results of a stack with no graph: every service is unknown, so a check's
    # failures on different services tie in ``order``. ghost:pg_ready and
    # y:pg_ready explain each other through their net_port edges (a circle, so
    # ghost's, first in the dict, becomes a root); z:pg_ready is unexplained.
    # v:http_health is explained by both; on the tie the unexplained one wins.
    bare = Stack(Path(), "bare", "bare", {})
    keys = [
        "ghost:pg_ready",
        "y:pg_ready",
        "y->ghost:net_port",
        "ghost->y:net_port",
        "z:pg_ready",
        "v->z:net_port",
        "v->ghost:net_port",
        "v:http_health",
    ]
    failures = {}
    for key in keys:
        where, check = key.split(":")
        service, _, target = where.partition("->")
        failures[CheckRef("bare", check, service, target or None)] = CHECKS[check]
    roots, cause, circle_roots = old_analyse(bare, failures)
    assert circle_roots == 1
    # On the tie the roots keep the old list's order too: unexplained ones first.
    assert [r.key for r in roots] == ["z:pg_ready", "ghost:pg_ready"]
    assert {c.key: r.key for c, r in cause}["v:http_health"] == "z:pg_ready"
    got = analyse(bare, failures)
    assert got.roots == roots
    assert list(got.cause.items()) == cause
