"""Switch the stackcheck plugin on for this directory: `pytest checks/ [--stack FILE]`."""

import pytest

from stackcheck.plugin import activate


def pytest_configure(config: pytest.Config) -> None:
    activate(config)
