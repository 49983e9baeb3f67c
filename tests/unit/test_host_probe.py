"""The host probe's reading of what testinfra returns: data root, df, meminfo; hostile text.

testinfra itself is replaced by a stand-in host here (pure parsing); the real
local backend runs in tests/integration/test_host_checks.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from stackcheck.config import Stack
from stackcheck.probes import host
from stackcheck.probes.deadline import Deadline


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str = ""


@dataclass
class Process:
    args: str


@dataclass
class File:
    content_string: str = ""
    is_file: bool = True


@dataclass
class FakeHost:
    processes: list[Process] = field(default_factory=list)
    files: dict[str, File] = field(default_factory=dict)
    df: Result = field(default_factory=lambda: Result(0, ""))
    ran: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def process(self) -> Any:
        outer = self

        class _Processes:
            def filter(self, **filters: str) -> list[Process]:
                assert filters == {"comm": "dockerd"}
                return outer.processes

        return _Processes()

    def file(self, path: str) -> File:
        if path not in self.files:
            return File(is_file=False)
        return self.files[path]

    def run(self, command: str, *args: str) -> Result:
        self.ran.append((command, args))
        return self.df


DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 1000 900 100 90% /\n"
MEMINFO = "MemTotal:       16000 kB\nMemFree:  100 kB\nMemAvailable:    4000 kB\n"


def probe(monkeypatch: pytest.MonkeyPatch, fake: FakeHost) -> Any:
    monkeypatch.setattr(host, "_host", lambda stack, deadline: fake)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stack = Stack.__new__(Stack)
    object.__setattr__(stack, "docker_host", None)
    return host.host_facts(stack, Deadline(5))


def test_the_engine_s_data_root_comes_from_its_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHost(
        processes=[Process("dockerd --data-root /srv/docker -H fd://")],
        files={"/proc/meminfo": File(MEMINFO)},
        df=Result(0, DF),
    )
    facts = probe(monkeypatch, fake)
    assert (facts.data_root, facts.data_root_from) == ("/srv/docker", "dockerd --data-root")
    # df's argument is passed for testinfra to quote, after `--`.
    assert fake.ran == [("df -Pk -- %s", ("/srv/docker",))]
    assert (facts.disk_size_kb, facts.disk_avail_kb, facts.disk_mount) == (1000, 100, "/")
    assert (facts.mem_total_kb, facts.mem_available_kb) == (16000, 4000)
    assert facts.mem_used_percent == 75.0 and facts.disk_used_percent == 90.0
    assert facts.blind is None and facts.blind_for == {}


def test_daemon_json_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeHost(
        processes=[Process("dockerd")],
        files={"/etc/docker/daemon.json": File('{"data-root": "/data/docker"}')},
        df=Result(0, DF),
    )
    assert probe(monkeypatch, fake).data_root == "/data/docker"
    fake.files["/etc/docker/daemon.json"] = File("{not json")
    facts = probe(monkeypatch, fake)
    assert (facts.data_root, facts.data_root_from) == ("/var/lib/docker", "default")


def test_no_engine_process_is_a_fact_not_blindness(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = probe(monkeypatch, FakeHost(df=Result(0, DF), files={"/proc/meminfo": File(MEMINFO)}))
    assert facts.engine_processes == [] and facts.blind is None
    assert "host_engine_running" not in facts.blind_for


@pytest.mark.parametrize(
    "df",
    [
        Result(1, "", "df: /var/lib/docker: No such file or directory"),
        Result(0, "garbage\n\x1b[31mred 1 2 3 4 5\n"),
        Result(0, ""),
    ],
)
def test_df_output_it_cannot_read_blinds_only_host_disk(
    monkeypatch: pytest.MonkeyPatch, df: Result
) -> None:
    facts = probe(monkeypatch, FakeHost(df=df, files={"/proc/meminfo": File(MEMINFO)}))
    assert set(facts.blind_for) == {"host_disk"}
    assert "\x1b" not in facts.blind_for["host_disk"]
    assert facts.mem_total_kb == 16000


def test_meminfo_without_memavailable_blinds_host_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = probe(
        monkeypatch, FakeHost(df=Result(0, DF), files={"/proc/meminfo": File("MemTotal: 1 kB\n")})
    )
    assert "MemAvailable" in facts.blind_for["host_memory"]


def test_a_host_that_cannot_be_reached_blinds_every_host_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(stack: Stack, deadline: Deadline) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused\x1b[2J")

    monkeypatch.setattr(host, "_host", refuse)
    stack = Stack.__new__(Stack)
    object.__setattr__(stack, "docker_host", None)
    facts = host.host_facts(stack, Deadline(5))
    assert facts.blind is not None and "\x1b" not in facts.blind
    assert facts.blind.startswith(
        "cannot reach the Docker host this machine: [Errno 111] Connection"
    )


def test_hints_run_host_commands_over_ssh_for_a_remote_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stack = Stack.__new__(Stack)
    object.__setattr__(stack, "docker_host", "ssh://ops@docker-1.example:2222")
    assert host.on_host(stack) == "ssh -p 2222 ops@docker-1.example -- "
    assert host.where(stack) == "ops@docker-1.example:2222"
    object.__setattr__(stack, "docker_host", None)
    assert host.on_host(stack) == "" and host.where(stack) == "this machine"
