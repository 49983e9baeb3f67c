"""Switch the stackcheck plugin on for this directory: `pytest checks/ [--stack FILE]`."""

import pytest

import stackcheck.plugin


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    stackcheck.plugin.install(pluginmanager)


def pytest_configure(config: pytest.Config) -> None:
    stackcheck.plugin.activate(config, __file__)
