"""stackcheck stays out of pytest sessions that do not run checks.

There is no pytest11 entry point: only checks/conftest.py switches the plugin
on. So another project's fixtures and options are its own, and switching the
plugin off where the checks need it is a plain usage error.

Every session here is a subprocess with stackcheck importable (PYTHONPATH), as
an installed stackcheck would be: what keeps it out is the missing switch, not
a failed import. Each "control" run loads the plugin by hand to show that the
assertion next to it would see it.
"""

from __future__ import annotations

import os

import pytest
from reportbench import SRC, CheckRun

pytest_plugins = ("pytester",)

PROJECT_CONFTEST = """
import pytest


@pytest.fixture
def http():
    return "the project's own http"
"""

PROJECT_TEST = """
def test_uses_its_own_http(http, request):
    assert http == "the project's own http"
    loaded = {getattr(p, "__name__", "") for p in request.config.pluginmanager.get_plugins()}
    assert not any(name.startswith("stackcheck") for name in loaded), sorted(loaded)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project of its own, no checks conftest, stackcheck importable."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SRC), path])))
    pytester.makeconftest(PROJECT_CONFTEST)
    pytester.makepyfile(test_project=PROJECT_TEST)
    return pytester


def test_another_project_s_fixture_named_http_is_its_own(project: pytest.Pytester) -> None:
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    control = project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "stackcheck.plugin")
    control.assert_outcomes(failed=1)


def test_help_offers_no_check_options(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--help")
    assert result.ret == 0
    text = result.stdout.str()
    assert "--stack" not in text and "--reports-dir" not in text
    assert "stackcheck" not in text
    control = project.runpytest_subprocess("-p", "stackcheck.plugin", "--help")
    assert "--stack" in control.stdout.str()


def test_the_checks_with_the_plugin_switched_off_are_a_usage_error(checkrun: CheckRun) -> None:
    for paths in (("checks",), ("checks/test_http.py",)):
        result = checkrun.run("-p", "no:stackcheck", subprocess=True, paths=paths)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        lines = [line for line in result.outlines + result.errlines if line.strip()]
        assert len([line for line in lines if "stackcheck" in line]) == 1, lines
        assert "-p no:stackcheck" in "\n".join(lines)
        text = "\n".join(lines)
        assert "Traceback" not in text and "INTERNALERROR" not in text
    assert not checkrun.reports.exists()
