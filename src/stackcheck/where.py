"""Where a check runs and what it reads: derived from its definition alone.

A service that runs several containers (compose ``--scale`` or
``deploy.replicas``) has each of them checked: a check that reads a
container-level fact (container, stats, logs, net, datafs, command) runs once
per replica, ``backend#1``, ``backend#2``...; a check that reads only the
service's DSN or URL (pg, http) runs once for the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stackcheck.config import Stack
from stackcheck.definition import Check, Scope
from stackcheck.model import HOST, CheckRef
from stackcheck.probes.gather import DOCKER_KINDS, Need

# Service -> its replica numbers, for the services that run several containers.
Replicas = Mapping[str, Sequence[int]]


def per_replica(check: Check) -> bool:
    """Whether ``check`` reads one container (so runs once per replica of a scaled service)."""
    return bool(DOCKER_KINDS & set(check.facts))


def _units(check: Check, service: str, replicas: Replicas | None) -> list[int | None]:
    numbers = sorted((replicas or {}).get(service, ()))
    if len(numbers) > 1 and per_replica(check):
        return [*numbers]  # sorted: every xdist worker collects the same ids
    return [None]


def refs(stack: Stack, check: Check, replicas: Replicas | None = None) -> list[CheckRef]:
    """Where ``check`` applies in ``stack``: its services, its dependency edges, or its
    host; each replica of a scaled service apart (``replicas``: as discovered)."""
    if check.scope is Scope.HOST:
        applies = check.applies is None or check.applies(stack)
        return [CheckRef(stack.name, check.name, HOST)] if applies else []
    if check.scope is Scope.EDGE:
        return [
            CheckRef(stack.name, check.name, source, target, replica)
            for source, target in stack.edges()
            if check.applies is None
            or check.applies(stack.services[source], stack.services[target])
            for replica in _units(check, source, replicas)
        ]
    return [
        CheckRef(stack.name, check.name, service.name, replica=replica)
        for service in stack.services.values()
        if check.applies is None or check.applies(service)
        for replica in _units(check, service.name, replicas)
    ]


def needs_of(ref: CheckRef, check: Check) -> set[Need]:
    """The probes ``check`` reads on ``ref``, from the fact fixtures it takes."""
    found = set()
    for kind in check.facts:
        replica = ref.replica if kind in DOCKER_KINDS else None
        if kind == "command":
            found.add(
                Need(kind, ref.service, check=check.name, argv=check.command, replica=replica)
            )
        else:
            target = ref.target if kind == "net" else None
            found.add(Need(kind, ref.service, target, replica=replica))
    return found
