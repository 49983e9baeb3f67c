"""A stand-in for stackcheck.plugin, copied into pytester dirs as their conftest.

It builds the stacks and check items the real collector would, but every
check's verdict comes from ``scenario.json`` instead of Docker:

    {"stacks": [{"name", "compose_project", "services": {NAME: {"depends_on",
      "postgres_dsn", "health_url", "port"}}}],
     "faults": {"db:container_running": {"evidence": "...", "context": {...},
                "setup_error": "...", "crash": "...", "print": "..."}}}

A fault with ``evidence`` fails the check as a real probe would (CheckFailed);
``crash`` raises another exception in the test, ``setup_error`` in a fixture.
"""

import json
from pathlib import Path

import pytest

from stackcheck import model, report
from stackcheck.config import Service, Stack
from stackcheck.report import hints

HERE = Path(__file__).parent
SCENARIO = json.loads((HERE / "scenario.json").read_text())


def _stack(spec):
    services = {
        name: Service(
            name,
            depends_on=tuple(s.get("depends_on", ())),
            health_url=s.get("health_url"),
            port=s.get("port"),
            postgres_dsn=s.get("postgres_dsn"),
        )
        for name, s in spec["services"].items()
    }
    return Stack(HERE / "stack.toml", spec["name"], spec["compose_project"], services)


STACKS = [_stack(s) for s in SCENARIO["stacks"]]


def refs(check):
    for stack in STACKS:
        if check in model.NETWORK_CHECKS:
            for source, target in stack.edges():
                yield model.CheckRef(stack.name, check, source, target)
            continue
        for service in stack.services.values():
            if check.startswith("pg_") and not service.postgres_dsn:
                continue
            if check == "http_health" and not service.health_url:
                continue
            yield model.CheckRef(stack.name, check, service.name)


def label(ref):
    return f"{ref.stack}/{ref.key}" if len(STACKS) > 1 else ref.key


def param_id(ref):
    where = f"{ref.service}->{ref.target}" if ref.target else ref.service
    return f"{ref.stack}/{where}" if len(STACKS) > 1 else where


def fault(ref):
    return SCENARIO.get("faults", {}).get(label(ref), {})


def pytest_addoption(parser):
    report.add_options(parser)


def pytest_configure(config):
    report.register(config, STACKS)


def pytest_generate_tests(metafunc):
    if "ref" in metafunc.fixturenames:
        found = list(refs(metafunc.function.__name__.removeprefix("test_")))
        metafunc.parametrize("ref", found, ids=[param_id(r) for r in found])


def pytest_itemcollected(item):
    ref = item.callspec.params["ref"]
    if isinstance(ref, model.CheckRef):  # not an empty parameter set
        item.stash[model.REF_KEY] = ref


@pytest.fixture
def verdict(ref):
    found = fault(ref)
    if "setup_error" in found:
        raise RuntimeError(found["setup_error"])
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    ref = item.stash.get(model.REF_KEY, None)
    if ref is None:
        return rep
    stack = next(s for s in STACKS if s.name == ref.stack)
    found = fault(ref)
    evidence = None
    if call.excinfo is not None and isinstance(call.excinfo.value, model.CheckFailed):
        evidence = str(call.excinfo.value)
    rep.stackcheck = {
        "stack": ref.stack,
        "compose_project": stack.compose_project,
        "check": ref.check,
        "service": ref.service,
        "target": ref.target,
        "evidence": evidence,
        "duration_s": 0.25,
        "context": {
            "compose_cmd": f"docker compose -p {stack.compose_project} -f /srv/compose.yml",
            "container": f"{stack.compose_project}-{ref.service}-1",
            **found.get("context", {}),
        },
    }
    hints.decorate(rep)
    return rep
