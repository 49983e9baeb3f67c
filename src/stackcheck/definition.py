"""What makes a check, declared once beside its test function with ``@check(...)``.

A check is a plain pytest test function that asserts on facts. The decorator
records everything else about it: its title, whether it runs per service or per
dependency edge, which services it applies to, its layer in the root-cause
order, its runbook steps, its fix commands with their safety classes and the
alerts that call for it. The facts it reads are not declared a second time:
they are the fact fixtures among the function's own parameters.

Every other table (parametrisation, which probes to run, the hints' live values,
alert markers, the runbook's agreement test, the reports) is derived from this
one record, which also travels in each report's payload as builtins, so that the
reporter (on the xdist controller too) needs nothing but the payload.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, TypeVar

RUNBOOK = "docs/runbook.md"

# The fixtures through which a check reads facts, and the fact kind (probe) each
# one needs. stackcheck.plugin provides one fixture per name (a unit test holds
# them equal); a check's facts are the names of this table among its parameters.
FACT_FIXTURES = ("container", "stats", "logs", "pg", "net", "http", "datafs", "command", "host")


class Safety(Enum):
    """What running a command does to the stack; shown beside every command."""

    READ_ONLY = "read-only"
    MUTATING = "mutating"
    DESTRUCTIVE = "destructive"


class Layer(IntEnum):
    """Where a check sits: a failure in a lower layer can explain one above it."""

    # The Docker host itself: its engine, disk and memory hold up every container.
    HOST = -1
    CONTAINER = 0
    RESOURCES = 1
    READINESS = 2
    NETWORK = 3
    API = 4
    # Error lines in the logs are a symptom of almost anything else.
    LOGS = 5


class Scope(Enum):
    SERVICE = "service"  # once per service of the stack file
    EDGE = "edge"  # once per depends_on edge, from the dependent service
    HOST = "host"  # once per stack: the Docker host its engine runs on


@dataclass(frozen=True)
class Step:
    """A step of a runbook: its anchor and heading in ``doc``."""

    anchor: str
    title: str
    doc: str = RUNBOOK

    @property
    def link(self) -> str:
        return f"{self.doc}#{self.anchor}"


@dataclass(frozen=True)
class Command:
    """A shell command template (``string.Template``: ``$compose``, ``$service``…).

    Values are shell-quoted when the template is filled in.
    """

    template: str
    safety: Safety


@dataclass(frozen=True)
class Fix:
    """The resolution step for a failure, and the commands it suggests."""

    step: Step
    commands: tuple[Command, ...]


Applies = Callable[..., bool]


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    scope: Scope
    layer: Layer
    # Order among checks of one layer on the same service or edge: a lower rank
    # explains a higher one; equal ranks are independent siblings.
    rank: int
    step: Step  # the diagnosis step this check implements
    fix: Fix  # the usual fix; ``expect(..., fix=...)`` may name one of ``other_fixes``
    other_fixes: tuple[Fix, ...] = ()
    alerts: tuple[str, ...] = ()
    # Edge checks only: which layers of the *target* service they rely on.
    target_layers: tuple[Layer, ...] = ()
    facts: tuple[str, ...] = ()  # fact fixtures the function takes
    # Which services (or edges: ``applies(source, target)``) it is for; None: all.
    applies: Applies | None = field(default=None, compare=False)
    # Argv run inside each service's container for the ``command`` fact.
    command: tuple[str, ...] = ()

    @property
    def fixes(self) -> tuple[Fix, ...]:
        return (self.fix, *self.other_fixes)

    @property
    def steps(self) -> tuple[Step, ...]:
        return (self.step, *(f.step for f in self.fixes))

    def to_payload(self, fix: Fix | None = None) -> dict[str, Any]:
        """Builtins only (the payload crosses from xdist workers): what the reporter needs."""
        chosen = fix or self.fix
        return {
            "name": self.name,
            "title": self.title,
            "scope": self.scope.value,
            "layer": int(self.layer),
            "rank": self.rank,
            "step": _step_payload(self.step),
            "fix": {
                "step": _step_payload(chosen.step),
                "commands": [[c.template, c.safety.value] for c in chosen.commands],
            },
            "alerts": list(self.alerts),
            "target_layers": [int(layer) for layer in self.target_layers],
            "facts": list(self.facts),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Check:
        fix = data["fix"]
        return cls(
            name=str(data["name"]),
            title=str(data["title"]),
            scope=Scope(data["scope"]),
            layer=Layer(int(data["layer"])),
            rank=int(data["rank"]),
            step=Step(**data["step"]),
            fix=Fix(
                Step(**fix["step"]),
                tuple(Command(str(t), Safety(s)) for t, s in fix["commands"]),
            ),
            alerts=tuple(data["alerts"]),
            target_layers=tuple(Layer(int(x)) for x in data["target_layers"]),
            facts=tuple(data["facts"]),
        )


def _step_payload(step: Step) -> dict[str, str]:
    return {"anchor": step.anchor, "title": step.title, "doc": step.doc}


F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "stackcheck"


def check(
    *,
    title: str,
    layer: Layer,
    step: Step,
    fix: Fix,
    rank: int = 0,
    other_fixes: Sequence[Fix] = (),
    alerts: Sequence[str] = (),
    edge: bool = False,
    host: bool = False,
    target_layers: Sequence[Layer] = (),
    applies: Applies | None = None,
    command: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare a test function ``test_NAME`` as the check ``NAME``.

    ``applies(service)`` (``applies(source, target)`` for ``edge=True``) receives
    stack-file services and says whether the check is for them; ``host=True`` makes
    it a check of the stack's Docker host, once per stack (``applies(stack)``). ``command`` is an
    argv list run inside each service's container; the check reads its outcome
    through the ``command`` fixture.
    """

    def declare(function: F) -> F:
        name = function.__name__.removeprefix("test_")
        if name == function.__name__:
            raise TypeError(f"{function.__name__}: a check's function must be named test_NAME")
        parameters = inspect.signature(function).parameters
        facts = tuple(p for p in parameters if p in FACT_FIXTURES)
        if not facts:
            raise TypeError(f"{function.__name__} reads no facts: take one of {FACT_FIXTURES}")
        if ("command" in facts) != bool(command):
            raise TypeError(f"{function.__name__}: the command fixture goes with command=[...]")
        setattr(
            function,
            ATTRIBUTE,
            Check(
                name=name,
                title=title,
                scope=Scope.HOST if host else Scope.EDGE if edge else Scope.SERVICE,
                layer=layer,
                rank=rank,
                step=step,
                fix=fix,
                other_fixes=tuple(other_fixes),
                alerts=tuple(alerts),
                target_layers=tuple(target_layers),
                facts=facts,
                applies=applies,
                command=tuple(command),
            ),
        )
        return function

    return declare


def definition_of(function: object) -> Check | None:
    found = getattr(function, ATTRIBUTE, None)
    return found if isinstance(found, Check) else None
