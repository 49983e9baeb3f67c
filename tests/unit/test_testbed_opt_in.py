"""A bare `pytest` never starts containers: the testbed's tests run only when opted in.

Two angles, neither needing Docker. First the real tests/conftest.py, copied into a
pytester directory next to a stand-in `testbed` package and a fake `docker` on
PATH that logs every call: the tests really run, so "no container started" is
observed, not inferred. Then the real tree: collecting tests/integration without
the opt-in deselects exactly the tests that --testbed keeps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(\d+) tests? needs? the testbed \((?:they|it) starts? containers\): deselected; "
    r"opt in with --testbed \(\./run\.sh test does\)$",
    re.MULTILINE,
)

# Stand-in for the testbed package: what tests/conftest.py imports, logging what
# would have touched the engine.
STUB_TESTBED = """
import os

CANARY_PASSWORD = "canary"


class TestbedError(Exception):
    pass


class Testbed:
    def __init__(self, **settings):
        self.settings = settings

    def _log(self, what):
        with open(os.environ["STUB_LOG"], "a") as log:
            log.write(what + "\\n")

    def up(self):
        self._log("up")

    def down(self):
        self._log("down")

    def inject(self, name):
        self._log("inject " + name)

    def reset(self):
        self._log("reset")
"""

# Every way a test can come to need the testbed, and two that do not.
TESTS = """
import pytest


@pytest.fixture
def stack_file(testbed):
    return "stack.toml"


def test_plain():
    pass


def test_direct(testbed):
    pass


def test_fault(fault):
    fault("db-stopped")


def test_through_another_fixture(stack_file):
    pass


@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(testbed, n):
    pass


def test_dynamic_request(request):
    request.getfixturevalue("testbed")
"""
NEED_TESTBED = 5  # direct, fault, through another fixture, two parametrized
# The health-check plugin serves checks/, not what is tested here (and may be
# mid-rewrite); the cache would write into the repository.
QUIET_PLUGINS = ("-p", "no:stackcheck", "-p", "no:cacheprovider")


@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The pytester directory set up; returns the log of engine and testbed calls."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(testbed=STUB_TESTBED, test_uses=TESTS)
    log = tmp_path / "calls.log"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text(f'#!/bin/sh\necho "docker $*" >> "{log}"\nexit 0\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_LOG", str(log))
    # Its own project name: the real conftest locks per project, and a real
    # testbed session elsewhere on this machine must not make us wait.
    monkeypatch.setenv("STACKCHECK_TESTBED_PROJECT", f"opt-in-test-{os.getpid()}")
    monkeypatch.delenv("STACKCHECK_TESTBED", raising=False)
    monkeypatch.delenv("STACKCHECK_TESTBED_KEEP", raising=False)
    return log


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: this session has already imported the real `testbed` package,
    # which would shadow the stand-in in an in-process run.
    return pytester.runpytest_subprocess(*QUIET_PLUGINS, *args)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_bare_run_deselects_every_testbed_test_and_touches_no_engine(
    pytester: pytest.Pytester, bench: Path
) -> None:
    result = run(pytester, "-rA")
    # Deselected, not skipped: a skip could pass for "fine here".
    result.assert_outcomes(passed=1, failed=1, deselected=NEED_TESTBED)
    line = LINE.search(result.stdout.str())
    assert line and int(line.group(1)) == NEED_TESTBED, result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED test_uses.py::test_plain"])
    # The one the collection cannot see fails, loudly, before starting anything.
    result.stdout.fnmatch_lines(
        [
            "*_ test_dynamic_request _*",
            "the testbed fixture needs --testbed or STACKCHECK_TESTBED=1",
        ]
    )
    assert calls(bench) == []


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--testbed"], "0"), ([], "1")],
    ids=["option", "environment"],
)
def test_opting_in_keeps_them(
    pytester: pytest.Pytester,
    bench: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str,
) -> None:
    monkeypatch.setenv("STACKCHECK_TESTBED", env)
    result = run(pytester, *args)
    result.assert_outcomes(passed=NEED_TESTBED + 2)
    assert not LINE.search(result.stdout.str())
    # The opt-in really reaches the engine: asked once, stack up, fault in and out, down.
    assert calls(bench) == ["docker info", "up", "inject db-stopped", "reset", "down"]


def test_only_value_1_opts_in(
    pytester: pytest.Pytester, bench: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKCHECK_TESTBED", "0")
    run(pytester).assert_outcomes(passed=1, failed=1, deselected=NEED_TESTBED)
    assert calls(bench) == []


def collect_integration(*args: str, path: str, fake_bin: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STACKCHECK_TESTBED"}
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *QUIET_PLUGINS, path, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_real_integration_tests_are_deselected_without_the_opt_in(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # Answers "engine up", so that even a bug running fixtures at collection could
    # not reach testbed/engine.sh (which installs and starts dockerd as root).
    (fake_bin / "docker").write_text(f'#!/bin/sh\necho "docker $*" >> "{log}"\nexit 0\n')
    (fake_bin / "docker").chmod(0o755)

    def ids(done: subprocess.CompletedProcess[str]) -> set[str]:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return {line for line in done.stdout.splitlines() if "::" in line}

    bare = collect_integration(path="tests/integration", fake_bin=fake_bin)
    opted_in = collect_integration("--testbed", path="tests/integration", fake_bin=fake_bin)
    kept, everything = ids(bare), ids(opted_in)
    deselected = everything - kept
    line = LINE.search(bare.stdout)
    assert line, bare.stdout[-3000:]
    assert int(line.group(1)) == len(deselected) > 0
    assert kept < everything
    # Direct users, `fault` users and users through another fixture (`renamed`) go;
    # tests that need no testbed stay.
    assert "tests/integration/test_testbed.py::test_comes_up_healthy" in deselected
    assert "tests/integration/test_smoke_job.py::test_smoke_job_healthy_then_failing" in deselected
    assert (
        "tests/integration/test_checks_renamed.py::test_other_names_and_ports_all_pass"
        in deselected
    )
    assert "tests/integration/test_images.py::test_a_changed_input_changes_the_tag" in kept
    assert not LINE.search(opted_in.stdout)
    assert not log.exists(), log.read_text()
