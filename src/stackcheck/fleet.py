"""Many stacks in one run: ``--stack`` directories and globs, and xdist by stack.

Under ``pytest -n N`` (or ``--tx``) every worker collects every check, but each
stack's checks run in one worker only, and that worker alone gathers the
stack's facts. Which worker runs which stack is a pure function of the
collection (the node ids, identical in every worker) and the number of
workers, so the controller's scheduler and each worker agree on it without
talking: a worker starts gathering its own stacks as soon as its collection
ends, all at once, and never touches the others. Should they ever disagree (a
worker that did not come up, a crashed worker's stacks run again elsewhere),
a worker gathers a stack lazily the first time one of its checks asks: slower,
never wrong.
"""

from __future__ import annotations

import glob
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

GLOB_CHARS = frozenset("*?[")
# The --dist modes in which stackcheck schedules by stack; any other is xdist's.
DIST_BY_STACK = frozenset({"load", "loadgroup"})


def stack_paths(args: Iterable[str], here: Path) -> list[Path]:
    """Each ``--stack`` argument as stack files: a file, every ``*.toml`` of a
    directory (sorted), or what a glob matches (sorted). The same file twice counts
    once. A directory without ``*.toml`` or a glob that matches nothing is a usage
    error naming it."""
    found: list[Path] = []
    seen: set[Path] = set()
    for arg in args:
        path = Path(here, arg)  # where it is; files are named as the user spelled them
        if path.is_dir():
            files = sorted(Path(arg, p.name) for p in path.glob("*.toml") if not p.is_dir())
            if not files:
                raise pytest.UsageError(f"--stack {_shown(arg)}: no *.toml stack file in it")
        elif not path.exists() and GLOB_CHARS & set(arg):
            matches = glob.glob(arg, root_dir=here)
            files = sorted(Path(m) for m in matches if not Path(here, m).is_dir())
            if not files:
                raise pytest.UsageError(f"--stack {_shown(arg)}: no stack file matches")
        else:
            files = [Path(arg)]  # missing or unreadable: the loader says so, naming it
        for file in files:
            key = Path(os.path.realpath(Path(here, file)))
            if key not in seen:
                seen.add(key)
                found.append(file)
    return found


def _shown(text: str, limit: int = 200) -> str:
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return "'" + shown + ("..." if len(text) > limit else "") + "'"


class Scopes:
    """Which work unit a node id belongs to: one per stack for the checks."""

    def __init__(self, rootpath: Path, directories: Iterable[Path], stacks: int) -> None:
        self.rootpath = rootpath
        self.directories = [Path(d).resolve() for d in directories]
        self.single = stacks == 1
        self._checks: dict[str, bool] = {}

    def _is_check(self, path: str) -> bool:
        known = self._checks.get(path)
        if known is None:
            resolved = Path(self.rootpath, path).resolve()
            known = any(resolved.is_relative_to(d) for d in self.directories)
            self._checks[path] = known
        return known

    def __call__(self, nodeid: str) -> str:
        """``stack:NAME`` for a check of stack NAME (as its test id spells it);
        ``stack:`` for every check when there is one stack; the node id itself
        for anything else, which is then a unit of its own."""
        path, sep, rest = nodeid.partition("::")
        if not sep or not rest.endswith("]") or "[" not in rest or not self._is_check(path):
            return nodeid
        if self.single:
            return "stack:"
        param = rest[rest.index("[") + 1 : -1]
        name, slash, _where = param.rpartition("/")  # where: service, a->b, svc#2: no '/'
        return f"stack:{name}" if slash else nodeid


def plan(collection: Sequence[str], scope: Callable[[str], str], workers: int) -> list[list[str]]:
    """The scopes each of ``workers`` runs: largest first, to the least loaded (by
    items; the first worker on ties). Deterministic: every process computes the same."""
    sizes: OrderedDict[str, int] = OrderedDict()
    for nodeid in collection:
        key = scope(nodeid)
        sizes[key] = sizes.get(key, 0) + 1
    shares: list[list[str]] = [[] for _ in range(max(1, workers))]
    loads = [0] * len(shares)
    for key in sorted(sizes, key=lambda k: -sizes[k]):  # stable: collection order on ties
        i = min(range(len(shares)), key=lambda j: (loads[j], j))
        shares[i].append(key)
        loads[i] += sizes[key]
    return shares


def worker_index(gateway_id: str) -> int | None:
    """``gw3`` -> 3; None for an id of another shape (``--tx ...//id=x``)."""
    if gateway_id.startswith("gw") and gateway_id[2:].isdigit():
        return int(gateway_id[2:])
    return None


def my_scopes(config: pytest.Config, collection: Sequence[str], scope: Scopes) -> set[str] | None:
    """In an xdist worker: the scopes the controller gives it (None outside xdist,
    or when this worker cannot tell)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    index = worker_index(str(workerinput.get("workerid", "")))
    count = workerinput.get("workercount")
    if index is None or not isinstance(count, int) or not 0 <= index < count:
        return None
    return set(plan(collection, scope, count)[index])


def make_scheduler(config: pytest.Config, log: Any, scope: Scopes) -> Any:
    """An xdist scheduler (its ``Scheduling`` protocol) running each stack in one worker."""
    from xdist.report import report_collection_diff
    from xdist.workermanage import parse_tx_spec_config

    class StackScheduling:
        """All work assigned up front by ``plan``; a crashed worker's unfinished
        stacks go to the worker xdist starts in its place."""

        def __init__(self) -> None:
            self.numnodes = len(parse_tx_spec_config(config))
            self.collection: list[str] | None = None
            self.queue: OrderedDict[str, dict[str, bool]] = OrderedDict()
            self.assigned: dict[Any, dict[str, dict[str, bool]]] = {}
            self.collections: dict[Any, list[str]] = {}
            self.log = log.stackcheck

        @property
        def nodes(self) -> list[Any]:
            return list(self.assigned)

        @property
        def collection_is_completed(self) -> bool:
            return len(self.collections) >= self.numnodes

        @property
        def tests_finished(self) -> bool:
            if not self.collection_is_completed or self.queue:
                return False
            # A worker holds its last item back until it is told to shut down.
            return all(_pending(work) < 2 for work in self.assigned.values())

        @property
        def has_pending(self) -> bool:
            return bool(self.queue) or any(_pending(w) for w in self.assigned.values())

        def add_node(self, node: Any) -> None:
            self.assigned[node] = {}

        def add_node_collection(self, node: Any, collection: Sequence[str]) -> None:
            if self.collection is not None and list(collection) != self.collection:
                first = next(iter(self.collections))
                msg = report_collection_diff(
                    self.collection, collection, first.gateway.id, node.gateway.id
                )
                self.log(msg)
                return
            self.collections[node] = list(collection)

        def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
            nodeid = self.collections[node][item_index]
            self.assigned[node][scope(nodeid)][nodeid] = True

        def mark_test_pending(self, item: str) -> None:
            raise NotImplementedError

        def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
            raise NotImplementedError

        def remove_node(self, node: Any) -> str | None:
            work = self.assigned.pop(node)
            crashed = None
            for key, unit in work.items():
                left = {n: False for n, done in unit.items() if not done}
                if left:
                    crashed = crashed or next(iter(left))
                    self.queue[key] = left
            return crashed

        def _send(self, node: Any, keys: Sequence[str]) -> None:
            mine = self.collections[node]
            where = {nodeid: i for i, nodeid in enumerate(mine)}
            indices = []
            for key in keys:
                unit = self.queue.pop(key)
                self.assigned[node][key] = unit
                indices += [where[n] for n, done in unit.items() if not done]
            if indices:
                node.send_runtest_some(indices)
            node.shutdown()  # everything it will get: it may run its last item

        def _same_collections(self) -> bool:
            (first, col), *others = self.collections.items()
            same = True
            for node, other in others:
                msg = report_collection_diff(col, other, first.gateway.id, node.gateway.id)
                if msg:
                    same = False
                    self.log(msg)
                    report = pytest.CollectReport(
                        nodeid=node.gateway.id, outcome="failed", longrepr=msg, result=[]
                    )
                    config.hook.pytest_collectreport(report=report)
            return same

        def schedule(self) -> None:
            if self.collection is not None:
                # A worker started in a crashed one's place: it takes what is left.
                for node in self.nodes:
                    if not node.shutting_down and self.queue:
                        self._send(node, list(self.queue))
                return
            if not self._same_collections():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = list(next(iter(self.collections.values())))
            if not self.collection:
                return
            for nodeid in self.collection:
                self.queue.setdefault(scope(nodeid), {})[nodeid] = False
            nodes = sorted(self.nodes, key=_node_order)
            shares = plan(self.collection, scope, len(nodes))
            for node, share in zip(nodes, shares, strict=True):
                if share:
                    self._send(node, share)
                else:  # more workers than stacks
                    self.assigned.pop(node)
                    node.shutdown()

    return StackScheduling()


def _pending(work: dict[str, dict[str, bool]]) -> int:
    return sum(1 for unit in work.values() for done in unit.values() if not done)


def _node_order(node: Any) -> tuple[int, str]:
    gateway_id = str(node.gateway.id)
    index = worker_index(gateway_id)
    return (index if index is not None else 1 << 30), gateway_id
