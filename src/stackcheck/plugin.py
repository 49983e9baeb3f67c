"""The pytest side of the suite: options, which checks run on what, their facts and reports.

Loaded everywhere through the ``pytest11`` entry point, but it only declares
options and fixtures until a check directory's conftest calls ``activate``:
``pytest tests/`` never reads a stack file or talks to Docker.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path

import pytest

from stackcheck import payload, report
from stackcheck.config import Stack, StackFileError, load_stack
from stackcheck.model import CHECKS, NETWORK_CHECKS, REF_KEY, CheckFailed, CheckRef
from stackcheck.probes import StackFacts, gather
from stackcheck.probes.facts import (
    ContainerFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    PgFacts,
    StatsFacts,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcheck", "runbook health checks")
    group.addoption(
        "--stack",
        action="append",
        default=[],
        metavar="PATH",
        help="stack file (TOML) naming the compose project to check; repeat to check "
        "several stacks in one run (default: stack.toml in the rootdir)",
    )
    report.add_options(parser)


def activate(config: pytest.Config) -> None:
    """Load the stack files and switch the checks on; a bad file is a usage error (exit 4)."""
    paths = [Path(p) for p in config.getoption("stack")] or [config.rootpath / "stack.toml"]
    try:
        stacks = [load_stack(p) for p in paths]
    except StackFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    names = [s.name for s in stacks]
    for name in names:
        if names.count(name) > 1:
            raise pytest.UsageError(f"two stack files name the stack '{name}': names must differ")
    collector = Collector(stacks)
    config.stash[COLLECTOR_KEY] = collector
    config.pluginmanager.register(collector, "stackcheck-collector")
    report.register(config, stacks)


class FactsRun:
    """One gathering per stack per process, started as soon as collection ends."""

    def __init__(self) -> None:
        self._facts: dict[str, StackFacts] = {}
        self._threads: dict[str, threading.Thread] = {}

    def start(self, stack: Stack, checks: set[str]) -> None:
        def work() -> None:
            self._facts[stack.name] = gather(stack, checks)

        thread = threading.Thread(target=work, name=f"gather:{stack.name}", daemon=True)
        self._threads[stack.name] = thread
        thread.start()

    def get(self, stack: Stack) -> StackFacts:
        thread = self._threads.get(stack.name)
        if thread is None:
            raise RuntimeError(f"facts for stack '{stack.name}' were never gathered")
        # gather() is bounded by the probe deadline; the margin only guards a bug.
        thread.join(timeout=2 * stack.timeouts.probe_s + 5)
        if stack.name not in self._facts:
            raise RuntimeError(f"gathering facts for '{stack.name}' did not finish")
        return self._facts[stack.name]

    def peek(self, stack: Stack) -> StackFacts | None:
        return self._facts.get(stack.name)


class Collector:
    """Parametrises the checks over the stacks' services and reports on them."""

    def __init__(self, stacks: list[Stack]) -> None:
        self.stacks = {s.name: s for s in stacks}
        self.facts = FactsRun()
        self.secrets = sorted({x for s in stacks for x in s.secrets()}, key=len, reverse=True)

    def refs(self, check: str) -> list[CheckRef]:
        found = []
        for stack in self.stacks.values():
            if check in NETWORK_CHECKS:
                found += [
                    CheckRef(stack.name, check, source, target)
                    for source, target in stack.edges()
                    if check != "net_port" or stack.services[target].port
                ]
                continue
            for service in stack.services.values():
                if check == "http_health" and not service.health_url:
                    continue
                if check.startswith("pg_") and not service.postgres_dsn:
                    continue
                found.append(CheckRef(stack.name, check, service.name))
        return found

    def ref_id(self, ref: CheckRef) -> str:
        where = f"{ref.service}->{ref.target}" if ref.target else ref.service
        return f"{ref.stack}/{where}" if len(self.stacks) > 1 else where

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        check = metafunc.definition.originalname.removeprefix("test_")
        if check in CHECKS and "ref" in metafunc.fixturenames:
            refs = self.refs(check)
            metafunc.parametrize("ref", refs, ids=[self.ref_id(r) for r in refs], scope="function")

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("ref"), CheckRef):
            item.stash[REF_KEY] = callspec.params["ref"]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        needed: dict[str, set[str]] = {}
        for item in items:
            ref = item.stash.get(REF_KEY, None)
            if ref is not None:
                needed.setdefault(ref.stack, set()).add(ref.check)
        for name, checks in needed.items():
            self.facts.start(self.stacks[name], checks)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        ref = item.stash.get(REF_KEY, None)
        if ref is None:
            return rep
        evidence = None
        if call.excinfo is not None:
            exc = call.excinfo.value
            if isinstance(exc, CheckFailed):
                evidence = str(exc)
            elif call.excinfo.errisinstance(pytest.skip.Exception):
                evidence = str(getattr(exc, "msg", exc))
            else:
                evidence = f"{type(exc).__name__}: {exc}"
        stack = self.stacks[ref.stack]
        rep.stackcheck = payload.build(  # type: ignore[attr-defined]
            ref, stack, self.facts.peek(stack), evidence, self.secrets
        )
        report.hints.decorate(rep)  # also masks passwords in the report's text
        return rep


COLLECTOR_KEY = pytest.StashKey[Collector]()


def _collector(request: pytest.FixtureRequest) -> Collector:
    collector = request.config.stash.get(COLLECTOR_KEY, None)
    if collector is None:
        pytest.fail("stackcheck is not active: call stackcheck.plugin.activate from a conftest")
    return collector


@pytest.fixture
def ref(request: pytest.FixtureRequest) -> CheckRef:
    """Which check on which service; parametrised by the collector."""
    raise pytest.UsageError(f"{request.node.nodeid}: 'ref' is set by parametrisation only")


@pytest.fixture
def stack(request: pytest.FixtureRequest, ref: CheckRef) -> Stack:
    return _collector(request).stacks[ref.stack]


@pytest.fixture
def facts(request: pytest.FixtureRequest, ref: CheckRef, stack: Stack) -> StackFacts:
    return _collector(request).facts.get(stack)


@pytest.fixture
def container(ref: CheckRef, facts: StackFacts) -> ContainerFacts:
    return facts.containers[ref.service]


@pytest.fixture
def stats(ref: CheckRef, facts: StackFacts) -> StatsFacts:
    return facts.stats[ref.service]


@pytest.fixture
def logs(ref: CheckRef, facts: StackFacts) -> LogFacts:
    return facts.logs[ref.service]


@pytest.fixture
def pg(ref: CheckRef, facts: StackFacts) -> PgFacts:
    return facts.pg[ref.service]


@pytest.fixture
def net(ref: CheckRef, facts: StackFacts) -> NetFacts:
    return facts.net[(ref.service, ref.target or "")]


@pytest.fixture
def http(ref: CheckRef, facts: StackFacts) -> HttpFacts:
    return facts.http[ref.service]
