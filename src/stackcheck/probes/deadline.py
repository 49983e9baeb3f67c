"""Run probes concurrently under one total deadline, on daemon threads.

Daemon threads, not a ThreadPoolExecutor: the executor joins its threads at
interpreter exit, so one probe stuck on a frozen server would hold the whole
run past its bound. An abandoned probe here just dies with the process.

A ``Pool`` bounds the threads (and so the connections) of a run over many
stacks: every stack's probes share its threads, first come first served. A
probe still waiting for a thread when its deadline passes never starts; it is
``Starved``, the checker's own limit, never the stack's fault.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

# Probe threads of one process (one xdist worker) at most, whatever the number of
# stacks: enough for 32 stacks whose PostgreSQL and health endpoint all hang at
# once (64 probes held to the deadline) with room for every other probe.
POOL_THREADS = 128


class Deadline:
    """An absolute point in time that every step of a probe shares."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, floor: float = 0.05) -> float:
        return max(floor, self.at - time.monotonic())


class TimedOut:
    """Stands in for the result of a probe that did not finish by the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __str__(self) -> str:
        return f"no answer within the {self.seconds:g} s probe deadline"


class Starved:
    """Stands in for a probe that never started: every thread of the pool was busy."""

    def __init__(self, seconds: float, threads: int) -> None:
        self.seconds = seconds
        self.threads = threads

    def __str__(self) -> str:
        return (
            f"the checker did not start this probe within the {self.seconds:g} s probe "
            f"deadline: all {self.threads} of its probe threads were busy with other probes "
            "(check fewer stacks per process, e.g. spread them with -n)"
        )


class Pool:
    """At most ``size`` daemon threads running submitted tasks in order.

    A thread is started only when no idle one is left for a queued task, and
    one idle for ``idle_s`` ends, so a long-lived process (pytester, a watch
    loop) does not keep the threads of past runs; ``close`` ends them at once.
    """

    def __init__(self, size: int = POOL_THREADS, idle_s: float = 2.0) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.idle_s = idle_s
        self._tasks: collections.deque[Callable[[], None]] = collections.deque()
        self._ready = threading.Condition()
        self._threads = 0
        self._busy = 0
        self._closed = False
        self.most_threads = 0  # the most threads it ever held (for tests and benchmarks)

    @property
    def threads(self) -> int:
        return self._threads

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on a pool thread (it must not raise); never blocks."""
        with self._ready:
            self._tasks.append(task)
            if len(self._tasks) > self._threads - self._busy and self._threads < self.size:
                self._threads += 1
                self.most_threads = max(self.most_threads, self._threads)
                name = f"stackcheck-probe-{self._threads}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
            self._ready.notify()

    def close(self) -> None:
        """Let every idle thread end now, and busy ones when their task ends."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._tasks:
                    gone = self._closed or not self._ready.wait(self.idle_s)
                    if gone and not self._tasks:
                        self._threads -= 1
                        return
                task = self._tasks.popleft()
                self._busy += 1
            with contextlib.suppress(Exception):  # a task's bug must not cost a thread
                task()
            with self._ready:
                self._busy -= 1


class Batch:
    """Probes started at once; ``collect`` waits for them until the deadline, no longer.

    With a ``pool`` they run on its threads (and may be ``Starved``); without
    one each gets a daemon thread of its own.
    """

    def __init__(self, deadline: Deadline, pool: Pool | None = None) -> None:
        self.deadline = deadline
        self.pool = pool
        self._keys: list[str] = []
        self._started: set[str] = set()
        self._results: dict[str, Any] = {}
        self.durations: dict[str, float] = {}
        self._done = threading.Condition()

    def start(self, key: str, task: Callable[[], Any]) -> None:
        def runner() -> None:
            with self._done:
                if key in self._results:  # given up on while it waited for a thread
                    return
                self._started.add(key)
            started = time.monotonic()
            try:
                value = task()
            except Exception as exc:  # a probe must never take the run down
                value = exc
            with self._done:
                if key not in self._results:
                    self._results[key] = value
                    self.durations[key] = time.monotonic() - started
                self._done.notify_all()

        self._keys.append(key)
        if self.pool is not None:
            self.pool.submit(runner)
        else:
            threading.Thread(target=runner, name=f"probe:{key}", daemon=True).start()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def collect(self) -> dict[str, Any]:
        """Each result, the exception it raised, a TimedOut, or (pooled) a Starved."""
        with self._done:
            while len(self._results) < len(self._keys):
                left = self.deadline.at - time.monotonic()
                if left <= 0:
                    break
                self._done.wait(left)
            for key in self._keys:
                if key in self._results:
                    continue
                if key in self._started or self.pool is None:
                    self._results[key] = TimedOut(self.deadline.seconds)
                    self.durations[key] = self.deadline.seconds
                else:  # still queued: it never ran, and now never will
                    self._results[key] = Starved(self.deadline.seconds, self.pool.size)
                    self.durations[key] = 0.0
            return {key: self._results[key] for key in self._keys}
