"""Where a check runs and what it reads: derived from its definition alone."""

from __future__ import annotations

from stackcheck.config import Stack
from stackcheck.definition import Check, Scope
from stackcheck.model import CheckRef
from stackcheck.probes.gather import Need


def refs(stack: Stack, check: Check) -> list[CheckRef]:
    """Where ``check`` applies in ``stack``: its services, or its dependency edges."""
    if check.scope is Scope.EDGE:
        return [
            CheckRef(stack.name, check.name, source, target)
            for source, target in stack.edges()
            if check.applies is None
            or check.applies(stack.services[source], stack.services[target])
        ]
    return [
        CheckRef(stack.name, check.name, service.name)
        for service in stack.services.values()
        if check.applies is None or check.applies(service)
    ]


def needs_of(ref: CheckRef, check: Check) -> set[Need]:
    """The probes ``check`` reads on ``ref``, from the fact fixtures it takes."""
    found = set()
    for kind in check.facts:
        if kind == "command":
            found.add(Need(kind, ref.service, check=check.name, argv=check.command))
        else:
            found.add(Need(kind, ref.service, ref.target if kind == "net" else None))
    return found
