"""Fixtures of the reporter's tests.

The test modules load pytester themselves: ``pytest_plugins`` is only allowed
in a top-level conftest, and this one is not.
"""

from __future__ import annotations

import os

import pytest
from reportbench import SRC, CheckRun


@pytest.fixture
def checkrun(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> CheckRun:
    # Subprocess runs (xdist) import stackcheck whether or not it is installed.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SRC), path])))
    return CheckRun(pytester)
