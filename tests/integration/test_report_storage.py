"""The report survives its own storage failing, on real filesystems (issue 9, item 2).

A full disk (a 64 KiB tmpfs, filled), a read-only one (a tmpfs mounted or
remounted ``ro``) and paths of the wrong type (a directory where a report file
goes, a file where the reports directory goes): each run still prints the whole
Remediation section, says in one line per output that it could not write it,
prints no traceback, and keeps its exit status. A report that was written
before the disk filled stays whole: every file is written to a temporary name
and renamed, so a full disk costs the new report, never the old one.

No Docker: the real checks run on fabricated facts (tests/unit/reportbench.py).
Mounting needs root; without it these tests fail and say so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))

from prometheus_client.parser import text_string_to_metric_families
from reportbench import DB_STOPPED, SRC, CheckRun, remediation, without_files

pytest_plugins = ("pytester",)

CLOCK = "incident-testbed.json"
# The database stopped, and the backend's log full of its errors: reports some
# pages larger than a healthy run's.
LOUD = {
    **DB_STOPPED,
    "logs:backend": {
        "match_count": 60,
        "matches": [
            f"ERROR: connection to db failed, attempt {i}: " + "timeout " * 30 for i in range(60)
        ],
    },
}
OUTPUTS = ("summary-testbed.json", "stackcheck-testbed.prom", CLOCK)


@pytest.fixture
def checkrun(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> CheckRun:
    # As tests/unit/conftest.py: subprocesses import stackcheck and the bench's plugin.
    parts = [str(SRC), str(pytester.path), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, parts)))
    return CheckRun(pytester)


@contextlib.contextmanager
def tmpfs(directory: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``directory`` with ``options``; unmounted whatever happens."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        pytest.fail("these tests mount a tmpfs, and there is no `mount` command here")
    if done.returncode != 0:
        pytest.fail(
            f"these tests mount a tmpfs (as root): {' '.join(argv)} failed: "
            f"{(done.stderr or done.stdout).strip()}"
        )
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True, timeout=60, check=True)


def remount(directory: Path, options: str) -> None:
    argv = ["mount", "-o", f"remount,{options}", str(directory)]
    subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)


def fill(directory: Path) -> int:
    """Fill the filesystem of ``directory`` until it refuses a byte; the bytes written."""
    written = 0
    with (directory / "filler").open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    # Proof that it is full: not one more byte, even in a new file.
    with pytest.raises(OSError, match="No space left"), (directory / "probe").open("wb") as probe:
        probe.write(b"x")
        probe.flush()
    (directory / "probe").unlink(missing_ok=True)
    return written


def cannot(result: pytest.RunResult) -> list[str]:
    return [line for line in remediation(result) if line.startswith("reports: cannot ")]


def assert_report_whole(result: pytest.RunResult, reference: pytest.RunResult) -> None:
    """The run's verdict and Remediation section are the reference's, but for its files."""
    output = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]
    assert result.ret == reference.ret
    section = remediation(result)
    assert without_files(section) == without_files(remediation(reference))
    assert "ROOT CAUSE db:container_running: Start a stopped container" in "\n".join(section)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def valid(path: Path) -> bool:
    """The file parses as what its consumer reads."""
    text = path.read_text()
    if path.suffix == ".json":
        return isinstance(json.loads(text), dict)
    if path.suffix == ".prom":
        return "stackcheck_stack_status" in {f.name for f in text_string_to_metric_families(text)}
    return text.startswith("# Incident: ")


# -- A full disk ---------------------------------------------------------------------


@pytest.mark.parametrize("free", [0, 8192], ids=["full", "8-KiB-free"])
def test_a_full_disk_costs_the_new_files_never_the_old_ones_or_the_report(
    checkrun: CheckRun, free: int
) -> None:
    checkrun.scenario(LOUD)
    reference = checkrun.run("--reports-dir=reference")
    with tmpfs(checkrun.reports, "size=64k"):
        # A healthy run first: its reports are smaller than an unhealthy run's,
        # so a file rewritten in place would outgrow what it frees, and be cut.
        checkrun.scenario({})
        first = checkrun.run()
        assert first.ret == 0 and cannot(first) == []
        before = snapshot(checkrun.reports)
        assert {"summary-testbed.json", "stackcheck-testbed.prom"} <= set(before)

        fill(checkrun.reports)
        if free:
            filler = checkrun.reports / "filler"
            os.truncate(filler, filler.stat().st_size - free)
        checkrun.scenario(LOUD)
        result = checkrun.run()
        summary = (checkrun.path / "reference" / "summary-testbed.json").stat().st_size
        assert summary > len(before["summary-testbed.json"]) + free  # it cannot fit

        assert_report_whole(result, reference)
        after = snapshot(checkrun.reports)
        problems = cannot(result)
        assert problems, "a run on a full disk wrote every file"
        failed = set()
        for line in problems:
            found = re.fullmatch(
                r"reports: cannot write (\S+): No space left on device(;.*)?", line
            )
            assert found, line
            failed.add(Path(found[1]).name)
        assert len(failed) == len(problems)  # one line per output
        assert "summary-testbed.json" in failed
        for name in OUTPUTS:
            if name in failed and name in before:  # not written: the old file, whole
                assert after[name] == before[name], name
            if name in after:
                assert valid(checkrun.reports / name), name
        if CLOCK in failed:
            assert "Incident clock unknown" in "\n".join(remediation(result))
        assert all(valid(checkrun.reports / name) for name in after if name.endswith(".md"))
        assert not [name for name in after if name.endswith(".tmp")]
    assert json.loads(before["summary-testbed.json"])["status"] == "healthy"


# -- A read-only disk -------------------------------------------------------------------


def test_a_read_only_reports_dir_costs_its_files_not_the_report(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    reference = checkrun.run("--reports-dir=reference")
    with tmpfs(checkrun.reports, "ro"):
        result = checkrun.run()
        assert_report_whole(result, reference)
        problems = cannot(result)
        assert problems == [
            f"reports: cannot lock {checkrun.reports / CLOCK}.lock: Read-only file system; "
            "the incident clock of testbed was not moved",
            f"reports: cannot write {checkrun.reports / 'summary-testbed.json'}: "
            "Read-only file system",
            f"reports: cannot write {checkrun.reports / 'stackcheck-testbed.prom'}: "
            "Read-only file system",
        ]
        assert "Incident clock unknown" in "\n".join(remediation(result))
        assert list(checkrun.reports.iterdir()) == []


def test_remounted_read_only_the_last_reports_stay_as_they_were(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    reference = checkrun.run("--reports-dir=reference")
    with tmpfs(checkrun.reports, "size=1m"):
        assert checkrun.run().ret == 1
        before = snapshot(checkrun.reports)
        remount(checkrun.reports, "ro")
        result = checkrun.run()
        assert_report_whole(result, reference)
        assert len(cannot(result)) == 3
        assert all("Read-only file system" in line for line in cannot(result))
        assert snapshot(checkrun.reports) == before
        remount(checkrun.reports, "rw")
        # Writable again: the incident goes on where it was.
        again = checkrun.run()
        assert cannot(again) == []
        assert len(json.loads((checkrun.reports / CLOCK).read_text())["runs"]) == 2


# -- Paths of the wrong type ------------------------------------------------------------


def test_a_directory_where_each_report_file_goes(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    reference = checkrun.run("--reports-dir=reference")
    with tmpfs(checkrun.reports, "size=1m"):
        for name in OUTPUTS:
            (checkrun.reports / name).mkdir()
        elsewhere = checkrun.path / "out"
        (elsewhere / "summary.json").mkdir(parents=True)
        (elsewhere / "a-file").write_text("")
        result = checkrun.run(
            f"--summary-json={elsewhere / 'summary.json'}",
            f"--prom-file={elsewhere / 'a-file' / 'x.prom'}",
        )
        assert_report_whole(result, reference)
        assert sorted(cannot(result)) == sorted(
            [
                f"reports: cannot write {checkrun.reports / CLOCK}: Is a directory; "
                "the incident clock of testbed was not moved",
                f"reports: cannot write {checkrun.reports / 'summary-testbed.json'}: "
                "Is a directory",
                f"reports: cannot write {checkrun.reports / 'stackcheck-testbed.prom'}: "
                "Is a directory",
                f"reports: cannot write {elsewhere / 'summary.json'}: Is a directory",
                f"reports: cannot write {elsewhere / 'a-file' / 'x.prom'}: File exists",
            ]
        )
        assert all((checkrun.reports / name).is_dir() for name in OUTPUTS)


def test_a_file_where_the_reports_dir_goes(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    reference = checkrun.run("--reports-dir=reference")
    (checkrun.path / "a-file").write_text("a file\n")
    result = checkrun.run("--reports-dir=a-file")
    assert_report_whole(result, reference)
    assert cannot(result) == [
        f"reports: cannot write {checkrun.path / 'a-file'}: File exists; "
        "no stack's reports were written and no incident clock was moved"
    ]
    assert (checkrun.path / "a-file").read_text() == "a file\n"
