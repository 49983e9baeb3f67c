"""Run probes concurrently under one total deadline, on daemon threads.

Daemon threads, not a ThreadPoolExecutor: the executor joins its threads at
interpreter exit, so one probe stuck on a frozen server would hold the whole
run past its bound. An abandoned probe here just dies with the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


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


class Batch:
    """Probes started at once; ``collect`` waits for them until the deadline, no longer."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._threads: dict[str, threading.Thread] = {}
        self._results: dict[str, Any] = {}
        self.durations: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, key: str, task: Callable[[], Any]) -> None:
        def runner() -> None:
            started = time.monotonic()
            try:
                value = task()
            except Exception as exc:  # a probe must never take the run down
                value = exc
            with self._lock:
                self._results[key] = value
                self.durations[key] = time.monotonic() - started

        thread = threading.Thread(target=runner, name=f"probe:{key}", daemon=True)
        self._threads[key] = thread
        thread.start()

    def collect(self) -> dict[str, Any]:
        """Each result, the exception it raised, or a TimedOut."""
        for thread in self._threads.values():
            thread.join(timeout=max(0.0, self.deadline.at - time.monotonic()))
        with self._lock:
            for key in self._threads:
                if key not in self._results:
                    self.durations[key] = self.deadline.seconds
            return {
                key: self._results.get(key, TimedOut(self.deadline.seconds))
                for key in self._threads
            }
