"""Writing report files: atomically, per stack, and never at the cost of the report.

Every file is written to a temporary name beside it and renamed into place, so
a reader (node_exporter, a dashboard, a second run) sees the old file or the
new one, never half of one. A write that fails (read-only or full disk, a file
where a directory should be) is reported in one line and the run goes on: a
broken reports directory must never cost the engineer the Remediation report.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path


class WriteFailed(Exception):
    """A report file could not be written; the message is one line."""


def slug(name: str) -> str:
    """A stack name as a safe file-name part: never a path, never empty.

    Names that needed changing get a short hash of the original, so two stacks
    whose names differ only in unsafe characters keep apart.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:64].strip("._") or "stack"
    if safe != name:
        safe += f"-{zlib.crc32(name.encode('utf-8', 'replace')):08x}"
    return safe


def read_bounded(path: Path, limit: int, unusable: type[Exception], too_big: str) -> bytes | None:
    """A report file's bytes, at most ``limit``; None if there is none.

    Never follows a link, never blocks; anything else raises ``unusable`` with
    a few words (``too_big`` when the file holds more than ``limit`` bytes).
    """
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the run; O_NOFOLLOW: a
        # link must not make it read (a device, a file elsewhere) what it points at.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise unusable(f"cannot open it: {exc.strerror or exc}") from None
    # Checked on the descriptor, before any read: a directory cannot even be
    # wrapped in a file object, and a device could be read forever.
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise unusable("not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise unusable(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise unusable(too_big)
    return data


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; WriteFailed with one line if it cannot."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise WriteFailed(f"cannot write {path}: {exc.strerror or exc}") from None


def _wait_for(fd: int, path: Path, wait_s: float) -> None:
    """Block on an exclusive flock of ``fd`` for at most ``wait_s``; WriteFailed if not held.

    The kernel wakes a blocked waiter the moment the lock is released, where a
    poller sleeps through its turn (and a run that comes back at once would take
    the lock every time). flock cannot time out, so a thread waits; if the wait
    is given up, that thread owns ``fd`` from then on and closes it (releasing
    the lock) as soon as its flock returns.
    """
    done = threading.Event()
    handoff = threading.Lock()
    held: list[bool] = []
    abandoned = False

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            ok = True
        except OSError:
            ok = False
        with handoff:
            if abandoned:
                os.close(fd)
                return
            held.append(ok)
            done.set()

    threading.Thread(target=wait, name="stackcheck-lock", daemon=True).start()
    done.wait(wait_s)
    with handoff:
        if not done.is_set():
            abandoned = True
            raise WriteFailed(f"{path} stayed locked by another run for {wait_s:g} s")
    if not held[0]:
        os.close(fd)
        raise WriteFailed(f"cannot lock {path}")


@contextlib.contextmanager
def locked(path: Path, wait_s: float = 5.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting at most ``wait_s``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a link in its place must not make us create or lock another file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise WriteFailed(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _wait_for(fd, path, wait_s)
    except OSError as exc:
        os.close(fd)
        raise WriteFailed(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
