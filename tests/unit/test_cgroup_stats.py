"""The cgroup stats reading: its parser (v1 and v2, docker stats' arithmetic, boundaries,
hostile output), the script itself run by the host's ``sh`` on fabricated cgroup trees,
and when ``stats_facts`` falls back to the engine's ``docker stats``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stackcheck.probes import cgroup, docker_probe
from stackcheck.probes.facts import StatsFacts

MIB = 1 << 20
HOST_KB = 24683656  # MemTotal of /proc/meminfo, in kB
V1_UNLIMITED = 9223372036854771712  # memory.limit_in_bytes with no limit (page-aligned max)


def v1(**changes: str) -> bytes:
    """A v1 reading as the script prints it (taken from the testbed's backend)."""
    lines = {
        "cgroup": "v1",
        "mem_usage": "30138368",
        "mem_limit": "268435456",
        "inactive_file": "8192",
        "cpu_quota": "-1",
        "cpu_period": "100000",
        "host_memory": f"{HOST_KB} kB",
        "online_cpus": "2",
        "cpu_usage1": "5394804708",
        "system1": "1085619 19172 217278 1000155 6613 0 2485",
        "cpu_usage2": "5397560555",
        "system2": "1085662 19172 217283 1000155 6613 0 2485",
        "end": "ok",
    }
    lines.update(changes)
    return "".join(f"{k} {v}\n" for k, v in lines.items() if v != "DROP").encode()


def v2(**changes: str) -> bytes:
    lines = {
        "cgroup": "v2",
        "mem_usage": str(150 * MIB),
        "mem_limit": "max",
        "inactive_file": str(10 * MIB),
        "cpu_max": "max 100000",
        "host_memory": f"{HOST_KB} kB",
        "online_cpus": "4",
        "cpu_usage1": "1000000",  # µs
        "system1": "100 0 0 0 0 0 0",
        "cpu_usage2": "1100000",
        "system2": "140 0 0 0 0 0 0",
        "end": "ok",
    }
    lines.update(changes)
    return "".join(f"{k} {v}\n" for k, v in lines.items() if v != "DROP").encode()


def test_v1_reading_is_docker_stats_arithmetic() -> None:
    reading = cgroup.parse(v1())
    assert reading.version == "v1"
    assert reading.mem_usage == 30138368 - 8192  # usage less total_inactive_file
    assert reading.mem_limit == 268435456
    # (container ns) / (host ticks * 10 ms) * online CPUs * 100
    cpu_ns = 5397560555 - 5394804708
    system_ns = (43 + 5) * 10_000_000
    assert reading.cpu_percent == pytest.approx(cpu_ns / system_ns * 2 * 100)
    assert reading.online_cpus == 2
    assert reading.cpu_limit is None


def test_v1_unlimited_memory_is_the_hosts() -> None:
    reading = cgroup.parse(v1(mem_limit=str(V1_UNLIMITED)))
    assert reading.mem_limit == HOST_KB * 1024


def test_v1_limit_just_under_the_host_is_kept() -> None:
    assert cgroup.parse(v1(mem_limit=str(HOST_KB * 1024 - 4096))).mem_limit == (
        HOST_KB * 1024 - 4096
    )


def test_v1_cpu_quota_is_cores() -> None:
    assert cgroup.parse(v1(cpu_quota="150000", cpu_period="100000")).cpu_limit == 1.5
    assert cgroup.parse(v1(cpu_quota="0")).cpu_limit is None
    assert cgroup.parse(v1(cpu_quota="?", cpu_period="?")).cpu_limit is None


def test_inactive_file_not_below_usage_is_not_subtracted() -> None:
    # docker's calculateMemUsageUnixNoCache subtracts only a smaller inactive_file
    assert cgroup.parse(v1(inactive_file="30138368")).mem_usage == 30138368
    assert cgroup.parse(v1(inactive_file="30138367")).mem_usage == 1
    assert cgroup.parse(v1(inactive_file="?")).mem_usage == 30138368


def test_v2_reading_counts_microseconds_and_max() -> None:
    reading = cgroup.parse(v2())
    assert reading.version == "v2"
    assert reading.mem_usage == 140 * MIB
    assert reading.mem_limit == HOST_KB * 1024  # "max": no limit, the host's memory
    # 0.1 s of CPU in 0.4 s of host time (40 ticks) on 4 CPUs: 100 % of one core
    assert reading.cpu_percent == pytest.approx(100.0)
    assert reading.cpu_limit is None


def test_v2_limits() -> None:
    reading = cgroup.parse(v2(mem_limit=str(256 * MIB), cpu_max="50000 100000"))
    assert reading.mem_limit == 256 * MIB
    assert reading.cpu_limit == 0.5


def test_idle_container_is_zero_percent() -> None:
    assert cgroup.parse(v1(cpu_usage2="5394804708")).cpu_percent == 0.0


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (v1(system2="1085619 19172 217278 1000155 6613 0 2485"), "did not advance"),
        (v1(cpu_usage2="1"), "did not advance"),
        (v1(online_cpus="0"), "no online CPU"),
        (v2(host_memory="?"), "host's memory unreadable"),
        (v1(mem_usage="?"), "unexpected line 'mem_usage ?'"),
        (v1(mem_usage="1" * 21), "unexpected line"),
        (v1(mem_usage="-5"), "unexpected line"),
        (v1(mem_usage="٣"), "unexpected line"),  # a digit, but not ASCII
        (v1(mem_limit="max"), "unexpected line 'mem_limit max'"),  # v2's word in v1
        (v1(end="DROP"), "incomplete output (no end)"),
        (v1(cpu_usage2="DROP", system2="DROP", end="DROP"), "no cpu_usage2, system2, end"),
        (v1(system1="1 2 3"), "unexpected line"),
        (v1() + b"mem_usage 1\n", "mem_usage given twice"),
        (v1() + b"evil \x1b]0;owned\x07text\n", "unexpected line 'evil text'"),
        (v1() + b"noseparator\n", "unexpected line 'noseparator'"),
        (b"", "no cgroup version"),
        (b"cgroup v3\n", "unexpected line 'cgroup v3'"),
        (b"x" * (cgroup.OUTPUT_CAP + 1), "more than the 4096 expected"),
        (
            b'OCI runtime exec failed: exec: "sh": executable file not found in $PATH\r\n',
            "unexpected line",
        ),
    ],
)
def test_output_that_does_not_fit_is_refused(output: bytes, reason: str) -> None:
    with pytest.raises(cgroup.OutputError, match=None) as caught:
        cgroup.parse(output)
    assert reason in str(caught.value)
    assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)


def test_a_container_without_its_own_cgroup_is_not_garbage() -> None:
    with pytest.raises(cgroup.CannotRead, match="no cgroup counters"):
        cgroup.parse(b"cgroup none\n")
    with pytest.raises(cgroup.CannotRead, match="no sleep"):
        cgroup.parse(v1(cpu_usage2="DROP", system2="DROP", end="no-sleep"))


# The script itself, run by the host's sh on fabricated trees (no container).


def run_script(root: Path, proc: Path, interval: float = 0.05) -> bytes:
    sh = shutil.which("sh")
    assert sh is not None
    argv = cgroup.argv(interval)
    argv[0] = sh
    argv[-2:] = [str(root), str(proc)]
    return subprocess.run(argv, capture_output=True, timeout=10, check=True).stdout


def fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(
        "cpu  100 1 2 3 4 5 6 7 0 0\ncpu0 50 0 1 1 2 2 3 3 0 0\ncpu1 50 1 1 2 2 3 3 4 0 0\n"
        "intr 1 2 3\nctxt 5\n"
    )
    (proc / "meminfo").write_text(f"MemTotal:       {HOST_KB} kB\nMemFree: 1 kB\n")
    return proc


def test_script_reads_a_v1_tree(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for sub in ("memory", "cpu", "cpuacct"):
        (root / sub).mkdir(parents=True)
    (root / "memory/memory.usage_in_bytes").write_text("1048576\n")
    (root / "memory/memory.limit_in_bytes").write_text(f"{V1_UNLIMITED}\n")
    (root / "memory/memory.stat").write_text(
        "cache 10\ninactive_file 999\ntotal_cache 10\ntotal_inactive_file 4096\n"
    )
    (root / "cpu/cpu.cfs_quota_us").write_text("200000\n")
    (root / "cpu/cpu.cfs_period_us").write_text("100000\n")
    (root / "cpuacct/cpuacct.usage").write_text("123456789\n")
    output = run_script(root, fake_proc(tmp_path))
    assert b"cpu_usage1 123456789\n" in output and b"end ok\n" in output
    assert b"system1 100 1 2 3 4 5 6\n" in output and b"online_cpus 2\n" in output
    # The fabricated counters stand still: parsed, refused as not advancing.
    with pytest.raises(cgroup.OutputError, match="did not advance"):
        cgroup.parse(output)
    assert b"inactive_file 4096\n" in output  # total_, not the cgroup's own
    assert b"cpu_quota 200000\n" in output and b"mem_limit " + str(V1_UNLIMITED).encode() in output


def test_script_reads_a_v2_tree_against_the_hosts_proc(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "memory.current").write_text(f"{64 * MIB}\n")
    (root / "memory.max").write_text("max\n")
    (root / "memory.stat").write_text(f"anon 1\nfile 2\ninactive_file {4 * MIB}\nactive_file 3\n")
    (root / "cpu.max").write_text("max 100000\n")
    (root / "cpu.stat").write_text("usage_usec 5000\nuser_usec 4000\nsystem_usec 1000\n")
    # The real /proc: the host's CPU ticks advance during the interval.
    reading = cgroup.parse(run_script(root, Path("/proc"), interval=0.1))
    assert reading.version == "v2"
    assert reading.mem_usage == 60 * MIB
    assert reading.cpu_percent == 0.0  # the fabricated usage_usec stands still
    assert reading.cpu_limit is None
    host_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert reading.mem_limit == host_kb * 1024  # "max": the host's MemTotal
    assert reading.online_cpus >= 1


def test_script_says_none_without_a_cgroup_of_its_own(tmp_path: Path) -> None:
    output = run_script(tmp_path, fake_proc(tmp_path))
    assert output == b"cgroup none\n"


def test_unreadable_files_read_as_unknown_not_as_zero(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    (root / "memory").mkdir(parents=True)
    (root / "memory/memory.usage_in_bytes").write_text("1048576\n")
    output = run_script(root, fake_proc(tmp_path))
    assert b"mem_limit ?\n" in output and b"cpu_usage1 ?\n" in output
    with pytest.raises(cgroup.OutputError, match="unexpected line 'mem_limit \\?'"):
        cgroup.parse(output)


# stats_facts: which failures fall back to the engine's docker stats.


class FakeApi:
    def __init__(self, output: bytes, code: int | None, refuse: Exception | None = None) -> None:
        self.output, self.code, self.refuse = output, code, refuse
        self.argv: list[str] = []

    def exec_create(self, container_id: str, argv: list[str], **_: Any) -> dict[str, str]:
        if self.refuse is not None:
            raise self.refuse
        self.argv = argv
        return {"Id": "e1"}

    def exec_start(self, exec_id: str, stream: bool, demux: bool) -> Any:
        return iter([(self.output, None)])

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"ExitCode": self.code}


class FakeContainer:
    id = "c1"
    name = "proj_backend_1"
    attrs: dict[str, Any] = {"HostConfig": {"Memory": 268435456}}  # noqa: RUF012


def facts_for(
    monkeypatch: pytest.MonkeyPatch,
    output: bytes,
    code: int | None = 0,
    refuse: Exception | None = None,
) -> tuple[StatsFacts, list[str]]:
    fell_back: list[str] = []

    def engine(client: Any, service: str, container: Any, why: str = "") -> StatsFacts:
        fell_back.append(why)
        return StatsFacts(service, source=f"docker stats ({why})")

    monkeypatch.setattr(docker_probe, "engine_stats_facts", engine)
    client = type("Client", (), {"api": FakeApi(output, code, refuse)})()
    return docker_probe.stats_facts(client, "backend", FakeContainer()), fell_back  # type: ignore[arg-type]


def test_stats_facts_from_the_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    facts, fell_back = facts_for(monkeypatch, v1())
    assert not fell_back and facts.blind is None and facts.error is None
    assert facts.mem_usage == 30138368 - 8192 and facts.mem_limit == 268435456
    assert facts.mem_limited and facts.online_cpus == 2 and facts.source == "cgroup v1"


def test_no_sh_in_the_image_falls_back_to_docker_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = b'OCI runtime exec failed: exec failed: exec: "sh": executable file not found\r\n'
    facts, fell_back = facts_for(monkeypatch, missing, code=126)
    assert fell_back == ["no sh in the image"] and facts.blind is None


def test_no_cgroup_of_its_own_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    facts, fell_back = facts_for(monkeypatch, b"cgroup none\n")
    assert fell_back == ["no cgroup counters of its own at /sys/fs/cgroup"]
    assert facts.source.startswith("docker stats")


def test_garbage_is_blind_not_a_crash_nor_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    facts, fell_back = facts_for(monkeypatch, v1(mem_usage="\x1b[2Jlots"), code=0)
    assert not fell_back
    assert facts.blind is not None and "\x1b" not in facts.blind
    assert "proj_backend_1" in facts.blind and "exit 0" in facts.blind


def test_a_paused_container_is_the_stacks_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    import docker.errors

    paused = docker.errors.APIError("409", explanation="Container c1 is paused, unpause it")
    facts, fell_back = facts_for(monkeypatch, b"", refuse=paused)
    assert not fell_back and facts.error is not None and "is paused" in facts.error


def test_an_exec_refused_otherwise_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import docker.errors

    denied = docker.errors.APIError("403", explanation="authorization denied by plugin")
    facts, fell_back = facts_for(monkeypatch, b"", refuse=denied)
    assert len(fell_back) == 1 and "authorization denied" in fell_back[0]
    assert facts.blind is None and facts.error is None


def test_the_exec_is_an_argv_with_the_script_not_a_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeApi(v1(), 0)
    client = type("Client", (), {"api": api})()
    docker_probe.stats_facts(client, "backend", FakeContainer())  # type: ignore[arg-type]
    assert api.argv[:3] == ["sh", "-c", cgroup.SCRIPT]
    assert api.argv[3:] == ["stackcheck", "0.2", "/sys/fs/cgroup", "/proc"]


# The reading from the engine's host (a local engine): where the host mounts
# the container's cgroup, and the script run there instead of an exec.

CID = "ab" * 32
V1_FILE = (
    f"12:memory:/docker/{CID}\n11:cpu,cpuacct:/docker/{CID}\n10:pids:/docker/{CID}\n"
    f"1:name=systemd:/docker/{CID}\n0::/system.slice/containerd.service\n"
)


def test_host_paths_v1_per_controller() -> None:
    assert cgroup.host_paths(V1_FILE, CID) == {
        "memory": f"/docker/{CID}",
        "cpu,cpuacct": f"/docker/{CID}",
    }


def test_host_paths_v2_systemd_scope() -> None:
    found = f"0::/system.slice/docker-{CID}.scope\n"
    assert cgroup.host_paths(found, CID) == {"": f"/system.slice/docker-{CID}.scope"}


@pytest.mark.parametrize(
    "text",
    [
        "12:memory:/user.slice/session-3.scope\n11:cpu,cpuacct:/user.slice\n",  # not ours
        f"12:memory:/docker/{'cd' * 32}\n",  # another container's process (pid reused)
        f"12:memory:/docker/{CID}/../../etc\n11:cpu,cpuacct:/docker/{CID}\n",
        f"12:memory:docker/{CID}\n",  # not absolute
        f"11:cpu,cpuacct:/docker/{CID}\n",  # v1 without the memory controller
        "0::/\n",  # the checker in a container of its own: its root
        "",
        "garbage\n",
        f"x:memory:/docker/{CID}\n",
    ],
)
def test_host_paths_that_do_not_name_the_container_leave_it_to_the_exec(text: str) -> None:
    assert cgroup.host_paths(text, CID) is None


def test_host_paths_want_a_full_container_id() -> None:
    assert cgroup.host_paths(V1_FILE, "ab") is None
    assert cgroup.host_paths(V1_FILE, "../" + CID[3:]) is None


class PidContainer(FakeContainer):
    id = CID

    def __init__(self, pid: object) -> None:
        self.attrs = {"HostConfig": {"Memory": 268435456}, "State": {"Pid": pid}}


def host_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cgroup_file: str) -> Path:
    """A host's /proc (the real CPU ticks and memory, a fabricated PID 4242) and cgroup tree."""
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(cgroup_file)
    for name in ("stat", "meminfo"):
        (proc / name).symlink_to(f"/proc/{name}")
    root = tmp_path / "cg"
    memory = root / "memory" / "docker" / CID
    cpu = root / "cpu,cpuacct" / "docker" / CID
    memory.mkdir(parents=True)
    cpu.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text(f"{40 * MIB}\n")
    (memory / "memory.limit_in_bytes").write_text(f"{256 * MIB}\n")
    (memory / "memory.stat").write_text(f"total_inactive_file {8 * MIB}\n")
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "cpuacct.usage").write_text("5000000\n")
    monkeypatch.setattr(cgroup, "PROC_ROOT", str(proc))
    monkeypatch.setattr(cgroup, "CGROUP_ROOT", str(root))
    return root


def test_a_local_engine_is_read_on_the_host_without_an_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_tree(tmp_path, monkeypatch, V1_FILE)
    api = FakeApi(b"", 0, refuse=AssertionError("no exec for a container read on the host"))
    client = type("Client", (), {"api": api})()
    facts = docker_probe.stats_facts(client, "backend", PidContainer(4242), on_host=True)  # type: ignore[arg-type]
    assert facts.source == "cgroup v1, read on the host", facts
    assert facts.mem_usage == 32 * MIB and facts.mem_limit == 256 * MIB
    assert facts.cpu_limit == 0.5 and facts.cpu_percent == 0.0  # the counter stands still


@pytest.mark.parametrize("pid", [None, 0, -1, True, "4242", 999999999])
def test_no_usable_pid_is_read_by_the_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pid: object
) -> None:
    host_tree(tmp_path, monkeypatch, V1_FILE)
    client = type("Client", (), {"api": FakeApi(v1(), 0)})()
    facts = docker_probe.stats_facts(client, "backend", PidContainer(pid), on_host=True)  # type: ignore[arg-type]
    assert facts.source == "cgroup v1" and client.api.argv  # through the exec


def test_a_remote_engine_is_never_read_on_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_tree(tmp_path, monkeypatch, V1_FILE)
    client = type("Client", (), {"api": FakeApi(v1(), 0)})()
    facts = docker_probe.stats_facts(client, "backend", PidContainer(4242), on_host=False)  # type: ignore[arg-type]
    assert facts.source == "cgroup v1" and client.api.argv


def test_a_pid_of_another_process_is_read_by_the_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_tree(tmp_path, monkeypatch, "12:memory:/user.slice\n11:cpu,cpuacct:/user.slice\n")
    client = type("Client", (), {"api": FakeApi(v1(), 0)})()
    facts = docker_probe.stats_facts(client, "backend", PidContainer(4242), on_host=True)  # type: ignore[arg-type]
    assert facts.source == "cgroup v1" and client.api.argv


def test_a_vanished_cgroup_is_read_by_the_exec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_tree(tmp_path, monkeypatch, V1_FILE)
    shutil.rmtree(tmp_path / "cg")  # the container stopped between the listing and now
    client = type("Client", (), {"api": FakeApi(v1(), 0)})()
    facts = docker_probe.stats_facts(client, "backend", PidContainer(4242), on_host=True)  # type: ignore[arg-type]
    assert facts.source == "cgroup v1" and client.api.argv


@pytest.mark.parametrize(
    ("address", "local"),
    [
        (None, True),
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", False),
        ("ssh://ops@host.example", False),
    ],
)
def test_which_engines_are_read_on_the_host(
    monkeypatch: pytest.MonkeyPatch, address: str | None, local: bool
) -> None:
    from stackcheck.config import Stack

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    stack = Stack(Path("s.toml"), "s", "s", {}, docker_host=address)
    assert docker_probe.is_local(stack) is local


# read_on_host prints what the script prints: the same files, the same rules.


def v1_host_tree(root: Path, **files: str) -> dict[str, str]:
    """A host's v1 cgroup tree for container CID (memory and cpu,cpuacct apart)."""
    contents = {
        "memory/memory.usage_in_bytes": f"{40 * MIB}\n",
        "memory/memory.limit_in_bytes": f"{V1_UNLIMITED}\n",
        "memory/memory.stat": "cache 1\ninactive_file 9\ntotal_inactive_file\t4096\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpuacct.usage": "  123456789  \n",
    }
    contents.update(files)
    for name, text in contents.items():
        controllers, _, leaf = name.partition("/")
        where = root / controllers / "docker" / CID
        where.mkdir(parents=True, exist_ok=True)
        if text != "DROP":
            (where / leaf).write_text(text)
    return {"memory": f"/docker/{CID}", "cpu,cpuacct": f"/docker/{CID}"}


def script_on(root: Path, paths: dict[str, str], proc: Path, tmp_path: Path) -> bytes:
    """SCRIPT run by sh on the same tree: v1 through a directory of links, one a controller."""
    if "" in paths:
        return run_script(Path(str(root) + paths[""]), proc)
    view = tmp_path / "view"
    view.mkdir()
    for controllers, path in paths.items():
        (view / controllers).symlink_to(Path(str(root / controllers) + path))
    return run_script(view, proc)


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"memory/memory.stat": "DROP", "cpu,cpuacct/cpu.cfs_quota_us": "DROP"},
        {"memory/memory.limit_in_bytes": "\n", "cpu,cpuacct/cpuacct.usage": "DROP"},
        {"memory/memory.stat": "total_inactive_file 1\ntotal_inactive_file 2 \n"},
    ],
)
def test_the_host_reading_prints_what_the_script_prints_v1(
    tmp_path: Path, files: dict[str, str]
) -> None:
    root = tmp_path / "cg"
    paths = v1_host_tree(root, **files)
    proc = fake_proc(tmp_path)
    ours = cgroup.read_on_host(paths, 0.01, str(root), str(proc))
    assert ours == script_on(root, paths, proc, tmp_path)


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"memory.max": "268435456\n", "cpu.max": "50000 100000\n"},
        {"cpu.stat": "DROP", "memory.stat": "anon 1\n"},
    ],
)
def test_the_host_reading_prints_what_the_script_prints_v2(
    tmp_path: Path, files: dict[str, str]
) -> None:
    root = tmp_path / "cg"
    where = root / "system.slice" / f"docker-{CID}.scope"
    where.mkdir(parents=True)
    contents = {
        "memory.current": f"{64 * MIB}\n",
        "memory.max": "max\n",
        "memory.stat": f"anon 1\ninactive_file {4 * MIB}\n",
        "cpu.max": "max 100000\n",
        "cpu.stat": "usage_usec 5000\nuser_usec 4000\n",
        **files,
    }
    for leaf, text in contents.items():
        if text != "DROP":
            (where / leaf).write_text(text)
    paths = {"": f"/system.slice/docker-{CID}.scope"}
    proc = fake_proc(tmp_path)
    ours = cgroup.read_on_host(paths, 0.01, str(root), str(proc))
    assert ours == script_on(root, paths, proc, tmp_path)


def test_no_cgroup_on_the_host_prints_none_as_the_script_does(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    for paths in ({"memory": f"/docker/{CID}"}, {"": f"/docker-{CID}.scope"}):
        ours = cgroup.read_on_host(paths, 0.01, str(tmp_path / "none"), str(proc))
        assert ours == b"cgroup none\n"
