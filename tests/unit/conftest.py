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
    # Subprocess runs (xdist) import stackcheck whether or not it is installed,
    # and the fabricating plugin from the pytester directory.
    path = os.environ.get("PYTHONPATH")
    parts = [str(SRC), str(pytester.path), path]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, parts)))
    return CheckRun(pytester)
