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


# One reading per Docker host and round (host.HostReadings): a fleet on one
# engine logs in, runs df and reads meminfo once, not once per stack.


def fleet_stack(name: str, docker_host: str | None = None, key: str | None = None) -> Stack:
    from pathlib import Path

    from stackcheck.config import SSHSettings

    ssh = SSHSettings(identity_file=Path(key) if key else None)
    return Stack(Path(f"{name}.toml"), name, name, {}, docker_host=docker_host, ssh=ssh)


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def fake(stack: Stack, deadline: Deadline) -> host.HostFacts:
        seen.append(stack.name)
        return host.HostFacts(host=host.where(stack), data_root=f"/data{len(seen)}")

    monkeypatch.setattr(host, "host_facts", fake)
    return seen


def test_stacks_on_one_host_share_one_reading(readings: list[str]) -> None:
    hosts = host.HostReadings()
    first = hosts.read(fleet_stack("a"), Deadline(5))
    second = hosts.read(fleet_stack("b"), Deadline(5))
    assert readings == ["a"]
    assert first == second and first is not second  # a copy each: no stack edits another's


def test_each_host_and_each_login_is_read_apart(readings: list[str]) -> None:
    hosts = host.HostReadings()
    for stack in (
        fleet_stack("local"),
        fleet_stack("unix", "unix:///run/other.sock"),
        fleet_stack("ssh", "ssh://ops@host.example"),
        fleet_stack("ssh-other-key", "ssh://ops@host.example", key="/k2"),
        fleet_stack("ssh-again", "ssh://ops@host.example"),
    ):
        hosts.read(stack, Deadline(5))
    assert readings == ["local", "unix", "ssh", "ssh-other-key"]


def test_a_new_round_reads_again(readings: list[str]) -> None:
    for _ in range(2):
        host.HostReadings().read(fleet_stack("a"), Deadline(5))
    assert readings == ["a", "a"]


def test_a_stack_waiting_for_a_hung_reading_is_blind_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    release = threading.Event()

    def hung(stack: Stack, deadline: Deadline) -> host.HostFacts:
        release.wait(10)
        return host.HostFacts(host="this machine")

    monkeypatch.setattr(host, "host_facts", hung)
    hosts = host.HostReadings()
    first = threading.Thread(target=hosts.read, args=(fleet_stack("a"), Deadline(5)))
    first.start()
    try:
        late = hosts.read(fleet_stack("b"), Deadline(0.2))
    finally:
        release.set()
        first.join()
    assert late.blind and "no answer within the 0.2 s probe deadline" in late.blind
    assert late.host == "this machine"
