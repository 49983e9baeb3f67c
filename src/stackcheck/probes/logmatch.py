"""The stack file's log patterns, run so that none can hold the run past its deadline.

``[logs] patterns`` and ``ignore`` are regexes from the user, and a regex can
take exponential time on one line (``error (a|a)+$`` against ``error aaa…!``).
Python's ``re`` holds the interpreter lock for the whole match, so such a line
stalled every other probe for tens of seconds. The guard, chosen and measured
for issue 9 (numbers in bench/README.md, "hostile inputs"):

- Matching uses the ``regex`` package (a superset of ``re``'s syntax) with
  ``timeout=`` and ``concurrent=True``: the match releases the interpreter lock
  while it runs (other probes go on) and gives up when the time is spent.
  One search may take MATCH_CALL_S, and all of one log's searches share one
  budget (half the probe time left), so many slow lines cannot add up past
  it either. ``regex`` counts CPU time of the process (C ``clock()``), so on
  a loaded machine the wall time to give up is longer; the probe's deadline
  still ends the wait (the Batch abandons the thread, which no longer holds
  the lock), never a hang and never a pass.
- ``regex`` expands counted repetition when it compiles, in C with the lock
  held (``(?:x{700}){700}``: 1.2 s, ``.{4294967294}``: never returns), so a
  pattern whose counted repetition makes more than ``MAX_COPIES`` copies is
  refused before it is compiled (``pattern_problem``); ``re`` parses the
  pattern for that count, which is linear in its length.
- A subprocess per match with a hard kill was measured too: 35 to 80 ms and
  ~9 MB per probe before any matching, once per service, against 8 ms of
  import once per run and ~1 µs per line here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex

# CPU seconds one search may take. A pattern that runs in linear time takes
# about 25 ms on a 1 MiB line (the most the probe reads), so more is
# backtracking. Kept short because regex counts CPU time, not wall time: on a
# machine whose cores are shared by eight busy processes, 0.5 s of CPU took
# 2 to 3 s of wall time (measured).
MATCH_CALL_S = 0.5
# Copies of pattern parts that counted repetition may add: with this many,
# ``regex`` compiles in under ~10 ms (x{10000}: 2 ms; (?:x{100}){100}: 8 ms).
MAX_COPIES = 10_000
SHOWN_PATTERN_CHARS = 80


def bad_line_source(patterns: Sequence[str]) -> str:
    """The one regex for bad lines: any pattern, as a whole word (used case-insensitively)."""
    return r"\b(?:" + "|".join(patterns) + r")\b"


def shown(pattern: str) -> str:
    """A pattern as quoted in a one-line reason: repr, cut to a readable length."""
    text = repr(pattern)
    return text if len(text) <= SHOWN_PATTERN_CHARS else text[: SHOWN_PATTERN_CHARS - 1] + "…"


class PatternError(ValueError):
    """A pattern the probe refuses to run; the message is the one-line reason."""


class OutOfTime(Exception):
    """Matching spent its budget: on one line (``pattern`` known) or over many."""

    def __init__(self, pattern: str | None, role: str, suspects: Sequence[str] = ()) -> None:
        super().__init__(pattern or role)
        self.pattern = pattern
        self.role = role
        self.suspects = tuple(suspects)


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _parts(name: str, av: Any) -> list[Any]:
    """The sub-patterns of one node of ``re``'s parse tree."""
    if name in _REPEATS:
        return [av[2]]
    if name == "SUBPATTERN":
        return [av[3]]
    if name == "BRANCH":
        return list(av[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name == "GROUPREF_EXISTS":
        return [av[1], av[2]] if av[2] else [av[1]]
    return []


def _copies(items: Any, factor: int) -> int:
    """Extra copies of pattern parts that counted repetition makes, as ``regex`` compiles it."""
    extra = 0
    for op, av in items:
        name = str(op)
        parts = _parts(name, av)
        if name in _REPEATS:
            low, high = av[0], av[1]
            # An open upper bound is not expanded; a closed one may be: count it.
            count = low if high == re._constants.MAXREPEAT else high  # type: ignore[attr-defined]
            extra += _copies(parts[0], factor * max(1, int(count)))
        elif parts:
            extra += sum(_copies(part, factor) for part in parts)
        else:
            extra += factor - 1
        if extra > MAX_COPIES:
            return extra  # enough to refuse; counting on could take long
    return extra


def _repeats(items: Any) -> bool:
    """Whether a parsed pattern repeats anything: without, a regex cannot backtrack far."""
    return any(
        str(op) in _REPEATS or any(_repeats(part) for part in _parts(str(op), av))
        for op, av in items
    )


def _parse(pattern: str) -> Any:
    return re._parser.parse(pattern)  # type: ignore[attr-defined]


def copies(pattern: str) -> int:
    """Extra copies ``regex`` makes of ``pattern``'s parts when it compiles it. Raises PatternError."""
    try:
        # re's parser: pure Python, linear in the pattern, and the syntax the
        # stack file's patterns are validated in.
        return _copies(_parse(pattern), 1)
    except re.error as exc:
        raise PatternError(f"invalid regex {shown(pattern)}: {exc}") from None
    except RecursionError:
        raise PatternError(f"regex {shown(pattern)} is nested too deeply") from None


def too_many_copies(pattern: str) -> str:
    return (
        f"regex {shown(pattern)} repeats too much: its counted repetition (x{{n}}, x{{m,n}}) "
        f"makes more than {MAX_COPIES:,} copies (with the other patterns), which takes seconds "
        "to compile; use + or * instead of large counts"
    )


def pattern_problem(pattern: str) -> str | None:
    """Why the log probe would refuse ``pattern`` on its own, or None."""
    try:
        extra = copies(pattern)
    except PatternError as exc:
        return str(exc)
    return too_many_copies(pattern) if extra > MAX_COPIES else None


@dataclass(frozen=True)
class Matcher:
    """The stack's log rules, compiled once; ``bad_at`` decides a line under a time budget."""

    patterns: tuple[str, ...]
    ignore: tuple[str, ...]
    bad: Any  # regex.Pattern: the package ships no type stubs
    harmless: tuple[tuple[str, Any], ...]

    def bad_at(self, line: str, until: float) -> int | None:
        """Where the first bad word of ``line`` starts, if the line is bad and not harmless.

        ``until`` is a ``time.monotonic()`` instant shared by every line of one
        log: each match may use what is left of it, and at most MATCH_CALL_S
        of CPU time. Raises OutOfTime.
        """
        found = self._search(self.bad, line, until, None, "patterns")
        if found is None:
            return None
        for source, harmless in self.harmless:
            if self._search(harmless, line, until, source, "ignore") is not None:
                return None
        return int(found.start())

    def _search(self, pattern: Any, line: str, until: float, source: str | None, role: str) -> Any:
        left = until - time.monotonic()
        if left <= 0:
            raise OutOfTime(None, role)
        try:
            # concurrent=True: the lock is released while the match runs.
            return pattern.search(line, concurrent=True, timeout=min(left, MATCH_CALL_S))
        except TimeoutError:
            if source is None:  # the combined bad-line regex: name the ones that repeat
                suspects = [p for p in self.patterns if _repeats(_parse(p))]
                if len(suspects) == 1:
                    raise OutOfTime(suspects[0], role) from None
                raise OutOfTime(None, role, suspects or self.patterns) from None
            raise OutOfTime(source, role) from None


@lru_cache(maxsize=32)
def matcher(patterns: tuple[str, ...], ignore: tuple[str, ...]) -> Matcher:
    """The compiled rules (cached: every service of a stack shares them). Raises PatternError."""
    total = 0
    heaviest = ("", "", -1)
    for role, values in (("patterns", patterns), ("ignore", ignore)):
        for pattern in values:
            try:
                extra = copies(pattern)
            except PatternError as exc:
                raise PatternError(f"[logs] {role}: {exc}") from None
            total += extra
            if extra > heaviest[2]:
                heaviest = (role, pattern, extra)
    if total > MAX_COPIES:
        # Counted together: the bad-line patterns compile as one regex, and
        # every pattern is compiled in the same probe.
        raise PatternError(f"[logs] {heaviest[0]}: {too_many_copies(heaviest[1])}")
    try:
        bad = regex.compile(bad_line_source(patterns), regex.IGNORECASE)
    except regex.error as exc:
        raise PatternError(f"[logs] patterns: invalid as one regex: {exc}") from None
    harmless = []
    for pattern in ignore:
        try:
            harmless.append((pattern, regex.compile(pattern)))
        except regex.error as exc:
            raise PatternError(f"[logs] ignore: invalid regex {shown(pattern)}: {exc}") from None
    return Matcher(patterns, ignore, bad, tuple(harmless))
