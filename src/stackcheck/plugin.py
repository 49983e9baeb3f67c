"""The pytest side of the suite: options, which checks run on what, their facts and reports.

Inert until a check directory's conftest switches it on, in two lines::

    def pytest_addoption(parser, pluginmanager):
        stackcheck.plugin.install(pluginmanager)

    def pytest_configure(config):
        stackcheck.plugin.activate(config, __file__)

So no option, fixture or hook of it reaches a pytest session that does not run
checks (there is no ``pytest11`` entry point), and ``-p no:stackcheck`` switches
it off with a one-line usage error instead of a traceback.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from stackcheck import fleet, payload, report, watch
from stackcheck.config import Stack, StackFileError, load_stack
from stackcheck.definition import Check, Fix, definition_of
from stackcheck.model import REF_KEY, CheckFailed, CheckRef, CouldNotCheck
from stackcheck.probes import docker_probe
from stackcheck.probes.deadline import POOL_THREADS, Deadline, Pool
from stackcheck.probes.facts import (
    CommandFacts,
    ContainerFacts,
    DataFsFacts,
    HostFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    PgFacts,
    StackFacts,
    StatsFacts,
)
from stackcheck.probes.gather import Discovery, Need, discover, gather, read_stats_early
from stackcheck.probes.host import HostReadings
from stackcheck.report.baseline import key_for
from stackcheck.runbook import ALERTS
from stackcheck.where import needs_of, refs

NAME = "stackcheck"
CHECK_KEY = pytest.StashKey[Check]()
NOT_APPLICABLE = "not-applicable"
# Stacks gathered at once in one process; more wait for a free gatherer. Each
# gathering ends within its stack's probe deadline.
GATHER_THREADS = 32


class Hooks:
    """Hooks stackcheck adds to pytest."""

    @pytest.hookspec(firstresult=True)
    def pytest_stackcheck_gather(
        self,
        stack: Stack,
        needs: frozenset[Need],
        discovery: Discovery | None,
        pool: Pool,
        env_key: bytes | None,
        hosts: HostReadings,
    ) -> StackFacts | None:
        """Gather the facts ``needs`` names about ``stack`` (default: the probes, on
        ``pool``'s threads, which every stack of the run shares; once per stack per
        run, under xdist in the worker that runs the stack's checks).

        ``discovery``: the stack's containers as listed at collection (None: list
        them). ``env_key``: the key containers' environments are digested with,
        never stored in the facts (report/baseline.py); None: take no digest.
        ``hosts``: the round's readings of Docker hosts, one per host, shared.
        Runs in a thread of its own. Tests implement it to fabricate facts.
        """

    @pytest.hookspec(firstresult=True)
    def pytest_stackcheck_discover(self, stack: Stack, deadline: Deadline) -> Discovery | None:
        """List ``stack``'s containers by service and replica (default: ask the engine).

        Runs in a thread of its own as soon as the plugin is active, bounded by
        ``deadline``; collection waits for it to name each replica in the test ids.
        Tests implement it to fabricate replicas.
        """


def install(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register this plugin once (from a conftest's ``pytest_addoption``)."""
    if pluginmanager.is_blocked(NAME):
        # Now, not in activate(): the command line is parsed before pytest_configure,
        # and its --stack would otherwise fail as an unknown option, naming no plugin.
        raise pytest.UsageError(
            "these checks need the stackcheck plugin, which is switched off (-p no:stackcheck)"
        )
    if pluginmanager.has_plugin(NAME):
        return
    import stackcheck.plugin as this

    pluginmanager.register(this, NAME)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcheck", "runbook health checks")
    group.addoption(
        "--stack",
        action="append",
        default=[],
        metavar="PATH",
        help="stack file (TOML) naming the compose project to check, a directory (its "
        "*.toml files) or a glob; repeat to check several stacks in one run "
        "(default: stack.toml in the rootdir)",
    )
    report.add_options(parser)
    watch.add_options(group)


@pytest.hookimpl(trylast=True)
def pytest_stackcheck_gather(
    stack: Stack,
    needs: frozenset[Need],
    discovery: Discovery | None,
    pool: Pool,
    env_key: bytes | None,
    hosts: HostReadings,
) -> StackFacts:
    return gather(stack, needs, discovery, pool, env_key, hosts)


@pytest.hookimpl(trylast=True)
def pytest_stackcheck_discover(stack: Stack, deadline: Deadline) -> Discovery:
    return discover(stack, deadline)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: never more workers than stacks, and none (a serial run) unless
    at least two workers still leave the controller a CPU of its own: the work is
    mostly waiting, and a worker costs an interpreter's start-up in CPU (measured
    on 2 cores: serial was faster). PYTEST_XDIST_AUTO_NUM_WORKERS is taken as the
    number of workers wanted."""
    import xdist.plugin

    try:
        stacks = len(fleet.stack_paths(config.getoption("stack"), config.invocation_params.dir))
    except pytest.UsageError:
        return None  # activate() says so, in its place
    stacks = stacks or 1
    wanted: int = xdist.plugin.pytest_xdist_auto_num_workers(config)
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return max(1, min(wanted, stacks))
    workers = min(wanted - 1, stacks)
    return workers if workers >= 2 else 0


def activate(config: pytest.Config, conftest: str | Path) -> None:
    """Switch the checks of ``conftest``'s directory on; a bad stack file is a usage error."""
    directory = Path(conftest).resolve().parent
    if not config.pluginmanager.has_plugin(NAME):
        raise pytest.UsageError(
            f"the checks in {directory} need the stackcheck plugin, which is switched off "
            "(-p no:stackcheck) or was never installed (stackcheck.plugin.install)"
        )
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:  # a second check directory in the same run
        collector.directories.add(directory)
        return
    here = config.invocation_params.dir
    paths = fleet.stack_paths(config.getoption("stack"), here) or [config.rootpath / "stack.toml"]
    try:
        stacks = [load_stack(p) for p in paths]
    except StackFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    stacks = [report.notify.apply_options(config, s) for s in stacks]
    named: dict[str, Stack] = {}
    for found in stacks:
        other = named.setdefault(found.name, found)
        if other is not found:
            raise pytest.UsageError(
                f"{other.path} and {found.path} both name the stack {found.name!r}: "
                "stack names must differ"
            )
    collector = Collector(config, stacks, directory)
    config.stash[COLLECTOR_KEY] = collector
    config.pluginmanager.register(collector, "stackcheck-collector")
    for marker, description in ALERTS.items():
        config.addinivalue_line("markers", f"{marker}: {description}")
    report.register(config, stacks, collector)
    watch.register(config, collector)


class DiscoveryRun:
    """One listing of each stack's containers per process, started when the plugin is active.

    Collection needs it (a scaled service's replicas are test ids), and the
    gathering reuses it instead of listing again. Bounded by the stack's probe
    deadline, which starts when the listing does.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._found: dict[str, Discovery] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._deadlines: dict[str, Deadline] = {}

    def start(self, stack: Stack, early: Pool | None = None) -> None:
        """List ``stack``'s containers in a thread; with ``early``, then start
        reading their memory and CPU on that pool (gather.read_stats_early)."""
        deadline = Deadline(stack.timeouts.probe_s)

        def work() -> None:
            try:
                found = self.config.hook.pytest_stackcheck_discover(stack=stack, deadline=deadline)
                if early is not None and found is not None:
                    read_stats_early(found, stack, deadline, early)
            except Exception as exc:  # a bug in discovery must not hang or crash the run
                found = Discovery(
                    blind=f"listing the containers failed: {type(exc).__name__}: {exc}"
                )
            self._found[stack.name] = found

        thread = threading.Thread(target=work, name=f"discover:{stack.name}", daemon=True)
        self._threads[stack.name] = thread
        self._deadlines[stack.name] = deadline
        thread.start()

    def get(self, stack: Stack) -> Discovery:
        """The listing, waiting for it within its deadline (a small margin guards a bug)."""
        thread = self._threads.get(stack.name)
        if thread is None:
            self.start(stack)
            thread = self._threads[stack.name]
        thread.join(timeout=self._deadlines[stack.name].left(floor=0.0) + 1.0)
        found = self._found.get(stack.name)
        if found is None:
            found = Discovery(
                blind=f"listing the containers of '{stack.name}' did not finish within the "
                f"{stack.timeouts.probe_s:g} s probe deadline"
            )
            self._found[stack.name] = found
        return found


class FactsRun:
    """One gathering per stack per process, each started at most once.

    Serially every stack starts as soon as collection ends; in an xdist worker
    only the stacks whose checks it runs (see ``fleet``), and any other the
    first time a check of it asks. Gatherings share one pool of probe threads;
    at most ``GATHER_THREADS`` stacks gather at once.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.pool = Pool(POOL_THREADS)
        self._gatherers = Pool(GATHER_THREADS)
        self.hosts = HostReadings()
        self._lock = threading.Lock()
        self._needs: dict[str, frozenset[Need]] = {}
        self._discovery: dict[str, Discovery | None] = {}
        self._done: dict[str, threading.Event] = {}
        self._began: dict[str, float] = {}
        self._facts: dict[str, StackFacts] = {}
        self._errors: dict[str, str] = {}
        self.started: list[str] = []  # stacks whose gathering was started, in order

    def want(
        self, stack: Stack, needs: frozenset[Need], discovery: Discovery | None = None
    ) -> None:
        """What ``stack``'s collected checks read (and its containers, if listed
        already): gathered when it is started."""
        self._needs[stack.name] = needs
        self._discovery[stack.name] = discovery

    def start(self, stack: Stack) -> None:
        """Start gathering ``stack`` (once; later calls do nothing)."""
        with self._lock:
            if stack.name in self._done or stack.name not in self._needs:
                return
            done = self._done[stack.name] = threading.Event()
            self.started.append(stack.name)
        needs = self._needs[stack.name]
        discovery = self._discovery.get(stack.name)
        key = key_for(self.config)

        def work() -> None:
            self._began[stack.name] = time.monotonic()
            try:
                found = self.config.hook.pytest_stackcheck_gather(
                    stack=stack,
                    needs=needs,
                    discovery=discovery,
                    pool=self.pool,
                    env_key=key,
                    hosts=self.hosts,
                )
            except Exception as exc:  # a bug in gathering must not hang or crash the run
                self._errors[stack.name] = f"{type(exc).__name__}: {exc}"
            else:
                self._facts[stack.name] = found
            finally:
                done.set()

        self._gatherers.submit(work)

    def get(self, stack: Stack) -> StackFacts:
        if stack.name not in self._needs:
            raise CouldNotCheck(f"facts for stack '{stack.name}' were never gathered")
        self.start(stack)
        done = self._done[stack.name]
        # gather() is bounded by the probe deadline; the margin only guards a bug.
        # Before it begins, it may wait for a gatherer behind other stacks.
        bound = stack.timeouts.probe_s + 5
        waves = math.ceil(len(self.started) / GATHER_THREADS)
        give_up = time.monotonic() + waves * (self._longest_probe_s() + 5)
        while not done.wait(timeout=0.05):
            began = self._began.get(stack.name)
            now = time.monotonic()
            if (began is not None and now > began + bound) or now > give_up:
                break
        if stack.name not in self._facts:
            why = self._errors.get(stack.name, "did not finish")
            raise CouldNotCheck(f"gathering facts for '{stack.name}' failed: {why}")
        return self._facts[stack.name]

    def _longest_probe_s(self) -> float:
        stacks = self.config.stash[COLLECTOR_KEY].stacks.values()
        return max((s.timeouts.probe_s for s in stacks), default=5.0)

    def peek(self, stack: Stack) -> StackFacts | None:
        return self._facts.get(stack.name)

    def close(self) -> None:
        """The run is over: idle threads end (a probe still hung ends with the process)."""
        self.pool.close()
        self._gatherers.close()


# How the xdist controller hands its replica numbers to the workers, so that
# every worker collects the same test ids even if a replica comes or goes.
WORKER_REPLICAS = "stackcheck_replicas"


class Collector:
    """Parametrises the checks over the stacks' services, gathers facts, labels reports."""

    def __init__(self, config: pytest.Config, stacks: list[Stack], directory: Path) -> None:
        self.config = config
        self.stacks = {s.name: s for s in stacks}
        self.directories = {directory}
        self.facts = FactsRun(config)
        self.discovery = DiscoveryRun(config)
        early = self.facts.pool if _reads_every_container(config, len(stacks)) else None
        for stack in stacks:
            self.discovery.start(stack, early)
        self._replicas: dict[str, dict[str, list[int]]] = {}
        self.secrets = sorted({x for s in stacks for x in s.secrets()}, key=len, reverse=True)
        self.collected: set[str] = set()  # node ids of the check items to run
        self.not_applicable: set[str] = set()
        self.deselected_by_others = False
        self.check_names: set[str] = set()
        self.needs: dict[str, frozenset[Need]] = {}  # per stack, what its checks read
        self.mine: list[str] = []  # the stacks this process gathers (xdist: its own)

    def ref_id(self, ref: CheckRef) -> str:
        return f"{ref.stack}/{ref.where}" if len(self.stacks) > 1 else ref.where

    def replicas(self, stack: Stack) -> dict[str, list[int]]:
        """The services of ``stack`` that run several containers, and their numbers.

        An xdist worker takes the controller's, so that all collect the same ids.
        """
        found = self._replicas.get(stack.name)
        if found is None:
            given = getattr(self.config, "workerinput", {}).get(WORKER_REPLICAS)
            if isinstance(given, dict) and isinstance(given.get(stack.name), dict):
                found = {str(k): [int(n) for n in v] for k, v in given[stack.name].items()}
            else:
                discovery = self.discovery.get(stack)
                found = discovery.replicas
                for service, count in discovery.over_cap.items():
                    warnings.warn(
                        pytest.PytestWarning(
                            f"stack '{stack.name}': service {service} runs {count} containers; "
                            f"only the {len(found[service])} lowest-numbered are checked"
                        ),
                        stacklevel=1,
                    )
            self._replicas[stack.name] = found
        return found

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: every worker collects the replicas this process found."""
        node.workerinput[WORKER_REPLICAS] = {
            name: self.replicas(stack) for name, stack in self.stacks.items()
        }

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        check = definition_of(metafunc.function)
        if check is None:
            return
        self.check_names.add(check.name)
        params = []
        for stack in self.stacks.values():
            for ref in refs(stack, check, self.replicas(stack)):
                marks: list[Any] = [getattr(pytest.mark, alert) for alert in check.alerts]
                service = stack.services.get(ref.service)  # None: the host
                if service is not None and check.name in service.gaps:
                    reason = (
                        f"declared gap: {stack.path} says services.{service.name} cannot "
                        f"support {check.name}"
                    )
                    marks.append(pytest.mark.skip(reason=reason))
                params.append(pytest.param(ref, id=self.ref_id(ref), marks=marks))
        if not params:
            # Deselected at collection, never an empty-parameter "skipped" entry.
            params.append(pytest.param(None, id=NOT_APPLICABLE))
        metafunc.parametrize("ref", params, scope="function")

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        callspec = getattr(item, "callspec", None)
        check = definition_of(_function(item))
        if callspec is None or check is None:
            return
        ref = callspec.params.get("ref")
        if isinstance(ref, CheckRef):
            item.stash[REF_KEY] = ref
            item.stash[CHECK_KEY] = check

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if any(item.nodeid not in self.not_applicable for item in items):
            self.deselected_by_others = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        idle = [i for i in items if REF_KEY not in i.stash and definition_of(_function(i))]
        if idle:
            self.not_applicable.update(i.nodeid for i in idle)
            items[:] = [i for i in items if i not in idle]
            config.hook.pytest_deselected(items=idle)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        needs: dict[str, set[Need]] = {}
        for item in session.items:
            ref = item.stash.get(REF_KEY, None)
            if ref is not None:
                self.collected.add(item.nodeid)
                needs.setdefault(ref.stack, set()).update(needs_of(ref, item.stash[CHECK_KEY]))
        for stack in self.stacks.values():
            unknown = {g for s in stack.services.values() for g in s.gaps} - self.check_names
            if unknown and self.whole_directories():
                raise pytest.UsageError(
                    f"{stack.path}: gaps name unknown checks: {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(sorted(self.check_names))})"
                )
        self.needs = {name: frozenset(wanted) for name, wanted in needs.items()}
        # Under xdist, only the stacks this worker runs (the others if ever asked).
        scope = self.scopes()
        mine = fleet.my_scopes(self.config, [i.nodeid for i in session.items], scope)
        self.mine = []
        for item in session.items:
            ref = item.stash.get(REF_KEY, None)
            if ref is None or ref.stack in self.mine:
                continue
            if mine is None or scope(item.nodeid) in mine:
                self.mine.append(ref.stack)
        self.regather(fresh=False)

    def regather(self, fresh: bool = True) -> None:
        """Start gathering every stack's facts (again, for a new round of --watch).

        The first round reuses the containers listed at collection; a new round
        lists them again (the test ids, replicas included, stay those collected).
        """
        if fresh:
            self.facts.close()
            self.facts = FactsRun(self.config)
        for name, wanted in self.needs.items():
            self.facts.want(
                self.stacks[name], wanted, None if fresh else self.discovery.get(self.stacks[name])
            )
        for name in self.mine:
            self.facts.start(self.stacks[name])

    def pytest_unconfigure(self) -> None:
        self.facts.close()
        # The SSH connections to remote engines last one run (see probes/sshengine.py).
        docker_probe.close_engines()

    def scopes(self) -> fleet.Scopes:
        """Which work unit (stack) a node id belongs to, as xdist's scheduler sees it."""
        return fleet.Scopes(self.config.rootpath, self.directories, len(self.stacks))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Each stack's checks in one worker, which alone gathers its facts."""
        if config.getoption("dist", None) not in fleet.DIST_BY_STACK:
            return None  # --dist each, loadfile, worksteal ...: as the user asked
        return fleet.make_scheduler(config, log, self.scopes())

    def whole_directories(self) -> bool:
        """Whether the command line names every check directory whole (no file, no node id)."""
        here = self.config.invocation_params.dir
        args = [a for a in self.config.args if a]
        for directory in self.directories:
            covered = False
            for arg in args:
                if "::" in arg:
                    return False
                path = Path(here, arg).resolve()
                if directory == path or directory.is_relative_to(path):
                    covered = True
                elif path.is_relative_to(directory):
                    return False  # a file or folder inside it: a subset
            if not covered:
                return False
        return True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        ref = item.stash.get(REF_KEY, None)
        if ref is None:
            return rep
        check = item.stash[CHECK_KEY]
        outcome, evidence, fix = _verdict(rep, call)
        stack = self.stacks[ref.stack]
        facts = self.facts.peek(stack)
        found = payload.build(ref, check, stack, facts, outcome, evidence, fix, self.secrets)
        if outcome == "error" and call.excinfo and not call.excinfo.errisinstance(CouldNotCheck):
            found["crashed"] = True  # a bug in a check or fixture: keep its traceback
        rep.stackcheck = found  # type: ignore[attr-defined]
        # Each check's time is the time of the probes it read, not the shared wait
        # for the gathering, which would all land on the first check to run.
        probe_s = payload.probe_duration(ref, check, facts) if facts else 0.0
        if call.when == "call" or (call.when == "setup" and rep.failed):
            rep.duration = probe_s
        else:
            rep.duration = 0.0
        report.hints.decorate(rep)  # also masks passwords in the report's text
        return rep


def _reads_every_container(config: pytest.Config, stacks: int) -> bool:
    """Whether this run will read every container's memory and CPU, as a whole
    run of the checks does: then the readings start with the container listing.

    A guess made before collection, on the command line alone: a wrong "yes"
    costs one read-only exec per container, whose reading is then unused; any
    selection (-k, -m, --deselect, a node id, --lf), --collect-only and xdist
    (whose workers gather only their own stacks) say no. So do fleets larger
    than the gatherers, which start in waves.
    """
    option = config.option
    if getattr(config, "workerinput", None) is not None or getattr(option, "numprocesses", None):
        return False
    selecting = ("keyword", "markexpr", "deselect", "collectonly", "lf", "failedfirst", "stepwise")
    if any(getattr(option, name, None) for name in selecting):
        return False
    return stacks <= GATHER_THREADS and not any("::" in arg for arg in config.args)


def _function(item: pytest.Item) -> object:
    return getattr(item, "function", None)


def _verdict(
    rep: pytest.TestReport, call: pytest.CallInfo[None]
) -> tuple[str, str | None, Fix | None]:
    """The check's outcome in this phase: passed, failed, error (could not check) or skipped."""
    if call.excinfo is None:
        return rep.outcome, None, None
    exc = call.excinfo.value
    if isinstance(exc, CheckFailed):
        return "failed", str(exc), exc.fix
    if call.excinfo.errisinstance(pytest.skip.Exception):
        return "skipped", str(getattr(exc, "msg", exc)), None
    if isinstance(exc, CouldNotCheck):
        return "error", str(exc), None
    # The check or a fixture crashed: the checker's fault, not the stack's.
    return "error", f"{type(exc).__name__}: {exc}", None


COLLECTOR_KEY = pytest.StashKey[Collector]()


def _collector(request: pytest.FixtureRequest) -> Collector:
    collector = request.config.stash.get(COLLECTOR_KEY, None)
    if collector is None:
        raise CouldNotCheck("stackcheck is not active: call stackcheck.plugin.activate")
    return collector


@pytest.fixture
def ref(request: pytest.FixtureRequest) -> CheckRef:
    """Which check on which service; parametrised by the collector."""
    raise pytest.UsageError(f"{request.node.nodeid}: 'ref' is set by parametrisation only")


@pytest.fixture
def stack(request: pytest.FixtureRequest, ref: CheckRef) -> Stack:
    """The stack file's view of the stack this check runs on."""
    return _collector(request).stacks[ref.stack]


@pytest.fixture
def facts(request: pytest.FixtureRequest, ref: CheckRef, stack: Stack) -> StackFacts:
    """Everything gathered about the stack (waits for the gathering, bounded)."""
    return _collector(request).facts.get(stack)


def _sighted(found: Any, ref: CheckRef, kind: str) -> Any:
    """The facts, unless the checker could not see them: then this check could not check."""
    if found is None:
        raise CouldNotCheck(f"no {kind} facts were gathered for {ref.where}")
    reason = found.blind or getattr(found, "blind_for", {}).get(ref.check)
    if reason:
        raise CouldNotCheck(reason)
    return found


@pytest.fixture
def container(ref: CheckRef, facts: StackFacts) -> ContainerFacts:
    """The service's container: state, restarts, health, limits, mounts."""
    found: ContainerFacts = _sighted(facts.containers.get(ref.unit), ref, "container")
    return found


@pytest.fixture
def stats(ref: CheckRef, facts: StackFacts) -> StatsFacts:
    """One memory and CPU sample of the service's container, as `docker stats` counts."""
    found: StatsFacts = _sighted(facts.stats.get(ref.unit), ref, "stats")
    return found


@pytest.fixture
def logs(ref: CheckRef, facts: StackFacts) -> LogFacts:
    """The recent log lines of the service's container that match the stack's patterns."""
    found: LogFacts = _sighted(facts.logs.get(ref.unit), ref, "logs")
    return found


@pytest.fixture
def pg(ref: CheckRef, facts: StackFacts) -> PgFacts:
    """pg_isready's outcome and the connection headroom of the service's PostgreSQL."""
    found: PgFacts = _sighted(facts.pg.get(ref.service), ref, "pg")
    return found


@pytest.fixture
def net(ref: CheckRef, facts: StackFacts) -> NetFacts:
    """Name lookup, ping and TCP from inside the source of an edge to its target."""
    found: NetFacts = _sighted(facts.net.get((ref.unit, ref.target or "")), ref, "net")
    return found


@pytest.fixture
def http(ref: CheckRef, facts: StackFacts) -> HttpFacts:
    """The answer of the service's health URL."""
    found: HttpFacts = _sighted(facts.http.get(ref.service), ref, "http")
    return found


@pytest.fixture
def datafs(ref: CheckRef, facts: StackFacts) -> DataFsFacts:
    """The filesystem holding the service's PostgreSQL data directory, measured inside."""
    found: DataFsFacts = _sighted(facts.datafs.get(ref.unit), ref, "datafs")
    return found


@pytest.fixture
def host(ref: CheckRef, facts: StackFacts) -> HostFacts:
    """The Docker host the stack's engine runs on: its engine process, disk, memory."""
    found: HostFacts = _sighted(facts.host, ref, "host")
    return found


@pytest.fixture
def command(ref: CheckRef, facts: StackFacts) -> CommandFacts:
    """The outcome of the check's own ``command=[...]`` inside the service's container."""
    found: CommandFacts = _sighted(facts.commands.get((ref.check, ref.unit)), ref, "command")
    return found
