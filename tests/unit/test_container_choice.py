"""Which of a service's containers the checks judge: the live one, whatever the names say.

Pure logic on stand-in containers (``status``, ``name``, ``labels``, as the
docker SDK's Container has them) and a stand-in client; the real engine case, a
stale *created* container next to the running one, is
tests/integration/test_stale_container.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stackcheck.config import Service, Stack
from stackcheck.probes.docker_probe import PROJECT_LABEL, SERVICE_LABEL, find_containers

PROJECT = "shop"


@dataclass
class FakeContainer:
    name: str
    status: str
    service: str = "backend"
    oneoff: bool = False
    labels: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = {PROJECT_LABEL: PROJECT, SERVICE_LABEL: self.service}
        if self.oneoff:
            self.labels["com.docker.compose.oneoff"] = "True"


class FakeContainers:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self._containers = containers
        self.calls: list[dict[str, Any]] = []

    def list(self, **kwargs: Any) -> list[FakeContainer]:
        self.calls.append(kwargs)
        return list(self._containers)


class FakeClient:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = FakeContainers(containers)


STACK = Stack(Path("stack.toml"), "s", PROJECT, {"backend": Service("backend")})


def judged(containers: list[FakeContainer]) -> list[str]:
    client = FakeClient(containers)
    found = find_containers(client, STACK)  # type: ignore[arg-type]
    assert client.containers.calls == [
        {"all": True, "filters": {"label": f"{PROJECT_LABEL}={PROJECT}"}}
    ]
    return [c.name for c in found["backend"]]


def test_a_stale_created_container_that_sorts_first_by_name_is_not_judged() -> None:
    # The case of the issue: "shop-backend-0-stale" < "shop_backend_1" by name.
    stale = FakeContainer("shop-backend-0-stale", "created")
    live = FakeContainer("shop_backend_1", "running")
    assert judged([stale, live]) == ["shop_backend_1", "shop-backend-0-stale"]


@pytest.mark.parametrize("state", ["created", "exited", "dead", "removing", "paused", "restarting"])
def test_running_goes_before_every_other_state(state: str) -> None:
    other = FakeContainer("a", state)
    live = FakeContainer("z", "running")
    for order in itertools.permutations([other, live]):
        assert judged(list(order))[0] == "z"


def test_full_order_by_state_then_name() -> None:
    containers = [
        FakeContainer("c-created", "created"),
        FakeContainer("b-exited", "exited"),
        FakeContainer("a-dead", "dead"),
        FakeContainer("e-paused", "paused"),
        FakeContainer("d-restarting", "restarting"),
        FakeContainer("g-running", "running"),
        FakeContainer("f-running", "running"),
        FakeContainer("0-odd", "some-future-state"),
    ]
    expected = [
        "f-running",
        "g-running",  # ties by name
        "d-restarting",
        "e-paused",  # restarting and paused: alive, but not serving
        "a-dead",
        "b-exited",  # stopped: its exit code and OOM flag are the evidence
        "c-created",  # never started: says least
        "0-odd",  # a state this code does not know: last
    ]
    for seed in range(5):  # whatever order the engine lists them in
        shuffled = containers[seed:] + containers[:seed]
        assert judged(shuffled) == expected


def test_services_are_grouped_and_one_off_run_containers_left_out() -> None:
    client = FakeClient(
        [
            FakeContainer("shop_backend_run_1", "running", oneoff=True),
            FakeContainer("shop_backend_1", "exited"),
            FakeContainer("shop_db_1", "running", service="db"),
        ]
    )
    found = find_containers(client, STACK)  # type: ignore[arg-type]
    assert {svc: [c.name for c in group] for svc, group in found.items()} == {
        "backend": ["shop_backend_1"],
        "db": ["shop_db_1"],
    }
