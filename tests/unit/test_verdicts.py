"""Every real check's verdict on fabricated facts, boundaries included: no Docker, no pytester.

The check functions are imported from ``checks/*.py`` by file path under private
module names, so that they are not collected twice and do not clash with
pytest's own import of ``checks/`` in other sessions. Each test builds the facts
a probe would report and calls the check itself: it passes, raises CheckFailed
(with the fix it chose), or skips.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackcheck.config import Service, Stack, Thresholds, load_stack
from stackcheck.definition import Fix, definition_of
from stackcheck.model import CheckFailed, CheckRef, CouldNotCheck
from stackcheck.plugin import _sighted
from stackcheck.probes.facts import (
    ContainerFacts,
    DataFsFacts,
    HostFacts,
    HttpFacts,
    LogFacts,
    NetFacts,
    PgFacts,
    StatsFacts,
)

CHECKS = Path(__file__).resolve().parents[2] / "checks"
MiB = 2**20


def _load(stem: str) -> ModuleType:
    """``checks/test_<stem>.py`` under a name of its own, not ``test_<stem>``."""
    path = CHECKS / f"test_{stem}.py"
    spec = importlib.util.spec_from_file_location(f"_stackcheck_checks_{stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


container_checks = _load("container")
host_checks = _load("host")
http_checks = _load("http")
log_checks = _load("logs")
network_checks = _load("network")
postgres_checks = _load("postgres")
resource_checks = _load("resources")

DSN = "postgresql://app@db:5432/app"


def stack(**thresholds: float) -> Stack:
    return Stack(
        Path("stack.toml"),
        "s",
        "p",
        {
            "db": Service("db", postgres_dsn=DSN, port=5432),
            "backend": Service("backend", depends_on=("db",), health_url="http://b/health"),
        },
        thresholds=Thresholds(**thresholds),
    )


def fails(function: Callable[..., None], *args: Any) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        function(*args)
    return info.value


def chosen_fix(function: Callable[..., None], exc: CheckFailed) -> Fix:
    """The fix a failure reports: the one ``expect(..., fix=)`` named, else the check's own."""
    check = definition_of(function)
    assert check is not None
    return exc.fix or check.fix


# --- pg_connections -----------------------------------------------------------------------


def pg(**fields: Any) -> PgFacts:
    base: dict[str, Any] = {
        "ping": "accepting",
        "in_use": 5,
        "max_connections": 30,
        "reserved": 3,
        "user": "app",
        "host": "db",
        "port": "5432",
    }
    return PgFacts("db", **{**base, **fields})


def test_pg_connections_counts_against_usable_slots_not_max_connections() -> None:
    # 22 of 30 would be 73%, under 80; of the 27 the application can have it is 81%.
    exc = fails(
        postgres_checks.test_pg_connections, pg(in_use=22), stack(pg_connections_percent=80)
    )
    assert "22 of 27 usable connections in use (81% >= 80%" in str(exc)
    assert "max_connections 30, 3 reserved" in str(exc)


def test_pg_connections_exactly_at_the_threshold_fails() -> None:
    exc = fails(
        postgres_checks.test_pg_connections,
        pg(in_use=20, max_connections=28, reserved=3),
        stack(pg_connections_percent=80),
    )
    assert "20 of 25 usable connections in use (80% >= 80%" in str(exc)


def test_pg_connections_just_below_the_threshold_passes() -> None:
    postgres_checks.test_pg_connections(
        pg(in_use=19, max_connections=28, reserved=3), stack(pg_connections_percent=80)
    )
    # 79 of 100 usable: a hair below.
    postgres_checks.test_pg_connections(
        pg(in_use=79, max_connections=103, reserved=3), stack(pg_connections_percent=80)
    )


def test_pg_connections_refused_for_lack_of_slots_fails() -> None:
    facts = pg(
        refused=True,
        error="FATAL: sorry, too many clients already",
        in_use=None,
        max_connections=None,
        reserved=None,
    )
    exc = fails(postgres_checks.test_pg_connections, facts, stack())
    assert "db:5432 refuses new connections for user 'app': out of connection slots" in str(exc)
    assert "too many clients" in str(exc)


@pytest.mark.parametrize(("max_connections", "reserved"), [(3, 3), (None, None)])
def test_pg_connections_without_usable_slots_fails(
    max_connections: int | None, reserved: int | None
) -> None:
    facts = pg(in_use=0, max_connections=max_connections, reserved=reserved)
    exc = fails(postgres_checks.test_pg_connections, facts, stack())
    assert str(exc) == "db:5432: max_connections leaves no usable slots"


def test_pg_connections_that_cannot_be_counted_fails() -> None:
    exc = fails(
        postgres_checks.test_pg_connections,
        pg(error="connection refused", in_use=None),
        stack(),
    )
    assert str(exc) == "cannot count connections on db:5432: connection refused"


# --- pg_ready -----------------------------------------------------------------------------


def test_pg_ready_passes_when_accepting() -> None:
    postgres_checks.test_pg_ready(pg(ping="accepting"))


@pytest.mark.parametrize(
    ("outcome", "meaning"),
    [
        ("rejecting", "rejecting connections (starting up or shutting down)"),
        ("no response", "no response from the server (down, frozen, or unreachable)"),
        ("no attempt", "no attempt made (bad connection parameters)"),
    ],
)
def test_pg_ready_fails_on_every_other_outcome(outcome: str, meaning: str) -> None:
    exc = fails(postgres_checks.test_pg_ready, pg(ping=outcome))
    assert str(exc).startswith(f"pg_isready on db:5432: {outcome}: ")
    assert meaning in str(exc)


# --- http_health --------------------------------------------------------------------------

URL = "http://b/health"


def http(**fields: Any) -> HttpFacts:
    base: dict[str, Any] = {"status": 200, "elapsed_s": 0.02, "body": '{"status":"ok"}'}
    return HttpFacts("backend", URL, **{**base, **fields})


@pytest.mark.parametrize("json_status", ["ok", "OK", "healthy", None])
def test_http_health_passes_on_200_with_a_healthy_or_no_json_status(json_status: Any) -> None:
    http_checks.test_http_health(http(json_status=json_status))


def test_http_health_fails_on_200_whose_body_says_degraded() -> None:
    exc = fails(
        http_checks.test_http_health,
        http(body='{"status":"degraded"}', json_status="degraded"),
    )
    assert f"GET {URL} answered 200 but its body says status='degraded'" in str(exc)


@pytest.mark.parametrize("status", [301, 302, 404, 429, 500, 503])
def test_http_health_fails_on_every_status_but_200(status: int) -> None:
    exc = fails(http_checks.test_http_health, http(status=status, body="nope", json_status=None))
    assert str(exc) == f"GET {URL} answered {status} after 0.02 s: nope"


def test_http_health_error_without_elapsed_time_reads_clean() -> None:
    exc = fails(
        http_checks.test_http_health,
        http(error="connection refused", status=None, elapsed_s=None, body=""),
    )
    assert str(exc) == "connection refused"
    assert "None" not in str(exc)


def test_http_health_error_says_how_long_it_waited() -> None:
    exc = fails(
        http_checks.test_http_health,
        http(error="read timed out", status=None, elapsed_s=3.0, body=""),
    )
    assert str(exc) == "read timed out after 3 s"


# --- container_running --------------------------------------------------------------------


def container(**fields: Any) -> ContainerFacts:
    base: dict[str, Any] = {
        "found": True,
        "name": "p-backend-1",
        "state": "running",
        "exit_code": 0,
        "started_at": "2026-11-28T02:00:00Z",
        "finished_at": "2026-11-28T01:59:00Z",
    }
    return ContainerFacts("backend", **{**base, **fields})


def test_container_running_passes_when_running() -> None:
    container_checks.test_container_running(container(), stack())


@pytest.mark.parametrize(
    ("fields", "evidence"),
    [
        (
            {"state": "exited", "exit_code": 1},
            "container p-backend-1 is exited (exit code 1) since 2026-11-28T01:59:00Z",
        ),
        (
            {"state": "restarting", "exit_code": 2},
            "container p-backend-1 is restarting; last exit code 2 at 2026-11-28T01:59:00Z",
        ),
        (
            {"state": "paused"},
            "container p-backend-1 is paused; running since 2026-11-28T02:00:00Z, processes frozen",
        ),
        (
            {"found": False, "state": "missing", "name": ""},
            "no container for service 'backend' in compose project 'p' (never created, or removed)",
        ),
    ],
    ids=["exited", "restarting", "paused", "missing"],
)
def test_container_running_fails_otherwise(fields: dict[str, Any], evidence: str) -> None:
    exc = fails(container_checks.test_container_running, container(**fields), stack())
    assert str(exc) == evidence


# --- container_stable ---------------------------------------------------------------------

STABLE = container_checks.test_container_stable
OOM_FIX = container_checks.OOM_FIX


def test_container_stable_passes_when_never_restarted() -> None:
    STABLE(container(), stack())


@pytest.mark.parametrize(
    "fields",
    [
        {"oom_killed": True, "exit_code": 137, "restart_count": 1, "recent_dies": 1},
        {"recent_ooms": 2, "exit_code": 0, "restart_count": 2, "recent_dies": 2},
        # Now looping: the OOM kill is still the reason, and the memory step the fix.
        {"oom_killed": True, "state": "restarting", "exit_code": 137, "restart_count": 5},
    ],
    ids=["oom-flag", "recent-oom-events", "oom-while-restarting"],
)
def test_container_stable_sends_an_oom_kill_to_the_memory_step(fields: dict[str, Any]) -> None:
    exc = fails(STABLE, container(mem_limit=256 * MiB, **fields), stack())
    assert exc.fix is OOM_FIX
    assert exc.fix.step.anchor == "resolve-resources"
    assert "was OOM-killed by the kernel against its memory limit of 256 MiB" in str(exc)


def test_container_stable_oom_without_a_limit_blames_the_host() -> None:
    exc = fails(STABLE, container(oom_killed=True, mem_limit=0), stack())
    assert "(no container memory limit: the host ran out)" in str(exc)


def test_container_stable_crash_loop_without_oom_gets_the_crash_loop_fix() -> None:
    exc = fails(STABLE, container(state="restarting", exit_code=1, restart_count=4), stack())
    assert chosen_fix(STABLE, exc).step.anchor == "resolve-crash-loop"
    assert str(exc) == (
        "container p-backend-1 is crash-looping: restarting after exit code 1, 4 restarts so far"
    )


def test_container_stable_fails_on_a_recent_restart_by_policy() -> None:
    facts = container(restart_count=1, recent_dies=1, recent_exit_codes=[1])
    exc = fails(STABLE, facts, stack(stable_window_s=300))
    assert chosen_fix(STABLE, exc).step.anchor == "resolve-crash-loop"
    assert str(exc) == (
        "container p-backend-1 restarted: 1 exit(s) in the last 300 s (exit codes 1), "
        "restart count 1"
    )


def test_container_stable_passes_on_old_restarts() -> None:
    # Restarted by its policy long ago: the count stays, no die event in the window.
    STABLE(container(restart_count=3, recent_dies=0), stack())


def test_container_stable_passes_on_a_manual_restart() -> None:
    # `docker restart` leaves a die event but does not bump the restart count.
    STABLE(container(restart_count=0, recent_dies=1, recent_exit_codes=[0]), stack())


def test_container_stable_fails_on_a_missing_container() -> None:
    exc = fails(STABLE, container(found=False, state="missing"), stack())
    assert str(exc) == "no container for service 'backend' in compose project 'p'"


# --- container_healthy --------------------------------------------------------------------

HEALTHY = container_checks.test_container_healthy


def test_container_healthy_without_healthcheck_skips() -> None:
    with pytest.raises(pytest.skip.Exception, match="has no HEALTHCHECK"):
        HEALTHY(container(health_status=None), stack())


def test_container_healthy_passes_when_healthy() -> None:
    HEALTHY(container(health_status="healthy"), stack())


@pytest.mark.parametrize("status", ["unhealthy", "starting"])
def test_container_healthy_fails_otherwise(status: str) -> None:
    facts = container(health_status=status, health_output="curl: (7) refused")
    exc = fails(HEALTHY, facts, stack())
    assert str(exc) == f"container p-backend-1 health check reports {status}: curl: (7) refused"


def test_container_healthy_fails_when_not_running() -> None:
    exc = fails(HEALTHY, container(health_status="unhealthy", state="exited"), stack())
    assert str(exc) == "container p-backend-1 is exited: its health check is not running"


# --- memory_headroom / cpu_headroom -------------------------------------------------------


def stats(**fields: Any) -> StatsFacts:
    base: dict[str, Any] = {
        "mem_usage": 10 * MiB,
        "mem_limit": 100 * MiB,
        "mem_limited": True,
        "cpu_percent": 1.0,
        "online_cpus": 4,
    }
    return StatsFacts("backend", **{**base, **fields})


MEMORY = resource_checks.test_memory_headroom
CPU = resource_checks.test_cpu_headroom


def test_memory_headroom_below_the_threshold_passes() -> None:
    MEMORY(stats(mem_usage=89 * MiB), stack(memory_percent=90))


@pytest.mark.parametrize("used", [90, 95])
def test_memory_headroom_at_or_above_the_threshold_fails(used: int) -> None:
    exc = fails(MEMORY, stats(mem_usage=used * MiB), stack(memory_percent=90))
    assert str(exc) == (f"backend uses {used} MiB of its memory limit 100 MiB ({used}% >= 90%)")


def test_memory_headroom_without_a_container_limit_counts_host_memory() -> None:
    exc = fails(MEMORY, stats(mem_usage=95 * MiB, mem_limited=False), stack(memory_percent=90))
    assert "of host memory (no container limit) 100 MiB" in str(exc)


def test_memory_headroom_fails_when_the_engine_reports_no_limit_or_an_error() -> None:
    exc = fails(MEMORY, stats(mem_limit=0), stack())
    assert str(exc) == "backend: the engine reported no memory limit"
    exc = fails(MEMORY, stats(error="container is exited"), stack())
    assert str(exc) == "container is exited"


@pytest.mark.parametrize(
    ("cpu_limit", "cpu_percent", "passes"),
    [
        (0.5, 44.5, True),  # 89% of half a core
        (0.5, 45.0, False),  # 90%: at the threshold
        (0.5, 50.0, False),  # 100%
        (None, 356.0, True),  # 89% of 4 host CPUs
        (None, 360.0, False),  # 90%
        (None, 400.0, False),  # 100%
    ],
)
def test_cpu_headroom_against_the_limit_or_the_host(
    cpu_limit: float | None, cpu_percent: float, passes: bool
) -> None:
    facts = stats(cpu_percent=cpu_percent, online_cpus=4)
    args = (facts, container(cpu_limit=cpu_limit), stack(cpu_percent=90))
    if passes:
        CPU(*args)
        return
    exc = fails(CPU, *args)
    limit = "its CPU limit (0.5 cores)" if cpu_limit else "all host CPUs (no container limit) (4"
    assert limit in str(exc)
    assert ">= 90%" in str(exc)


def test_cpu_headroom_fails_on_a_stats_error() -> None:
    exc = fails(CPU, stats(error="container is exited"), container(), stack())
    assert str(exc) == "container is exited"


# --- pg_data_disk -------------------------------------------------------------------------

DISK = postgres_checks.test_pg_data_disk


def datafs(used_kb: int, avail_kb: int, size_kb: int, **fields: Any) -> DataFsFacts:
    return DataFsFacts(
        "db",
        path="/var/lib/postgresql/data",
        mount="volume db-data",
        used_kb=used_kb,
        avail_kb=avail_kb,
        size_kb=size_kb,
        **fields,
    )


def test_data_disk_used_percent_is_df_s() -> None:
    # df's Use% ignores the blocks reserved for root: used / (used + available).
    assert datafs(90, 10, 120).used_percent == 90.0
    assert datafs(0, 0, 0).used_percent == 0.0


def test_pg_data_disk_below_the_threshold_passes() -> None:
    DISK(datafs(89, 11, 120), stack(data_disk_percent=90))


@pytest.mark.parametrize(("used", "avail"), [(90, 10), (95, 5)])
def test_pg_data_disk_at_or_above_the_threshold_fails(used: int, avail: int) -> None:
    # Of size (120) it would be 75% or 79%: only df's arithmetic fails it.
    exc = fails(DISK, datafs(used * 1024, avail * 1024, 120 * 1024), stack(data_disk_percent=90))
    assert str(exc).startswith(
        f"the filesystem of /var/lib/postgresql/data (volume db-data) is {used}% full (>= 90%): "
        f"{avail} MiB free of 120 MiB"
    )


def test_pg_data_disk_threshold_comes_from_the_stack_file(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(
        '[stack]\nname = "s"\ncompose_project = "p"\n'
        "[thresholds]\ndata_disk_percent = 50\n"
        f'[services.db]\npostgres_dsn = "{DSN}"\n'
    )
    loaded = load_stack(path)
    fails(DISK, datafs(50, 50, 100), loaded)
    DISK(datafs(49, 51, 100), loaded)


def test_pg_data_disk_fails_on_an_error() -> None:
    exc = fails(DISK, datafs(0, 0, 0, error="cannot look inside db: container is exited"), stack())
    assert str(exc) == "cannot look inside db: container is exited"


# --- host_engine_running, host_disk, host_memory ------------------------------------------


def host_facts(**fields: Any) -> HostFacts:
    base: dict[str, Any] = {
        "engine_processes": ["dockerd --iptables=false"],
        "data_root": "/srv/docker",
        "data_root_from": "dockerd --data-root",
        "disk_mount": "/srv",
        "disk_size_kb": 100 * 1024,
        "disk_avail_kb": 50 * 1024,
        "mem_total_kb": 1000 * 1024,
        "mem_available_kb": 500 * 1024,
    }
    return HostFacts("root@host:2222", **{**base, **fields})


def test_host_engine_running_passes_with_a_dockerd_and_fails_without() -> None:
    host_checks.test_host_engine_running(host_facts())
    exc = fails(host_checks.test_host_engine_running, host_facts(engine_processes=[]))
    assert str(exc).startswith(
        "no dockerd process runs on root@host:2222: the Docker engine is down"
    )


@pytest.mark.parametrize(("avail", "passes"), [(11, True), (10, False), (0, False)])
def test_host_disk_fails_at_the_threshold(avail: int, passes: bool) -> None:
    facts = host_facts(disk_size_kb=100 * 1024, disk_avail_kb=avail * 1024)
    if passes:
        host_checks.test_host_disk(facts, stack(host_disk_percent=90))
        return
    exc = fails(host_checks.test_host_disk, facts, stack(host_disk_percent=90))
    assert str(exc).startswith(
        f"the filesystem of /srv/docker (/srv, the engine's data, from dockerd --data-root) on "
        f"root@host:2222 is {100 - avail}% full (>= 90%): {avail} MiB free of 100 MiB"
    )


@pytest.mark.parametrize(("available", "passes"), [(101, True), (100, False), (5, False)])
def test_host_memory_counts_memavailable_as_free(available: int, passes: bool) -> None:
    # 1000 MiB in all: 100 MiB available is 90 % in use.
    facts = host_facts(mem_total_kb=1000 * 1024, mem_available_kb=available * 1024)
    if passes:
        host_checks.test_host_memory(facts, stack(host_memory_percent=90))
        return
    exc = fails(host_checks.test_host_memory, facts, stack(host_memory_percent=90))
    assert str(exc).startswith(f"{100 - available / 10:.0f}% of the memory of root@host:2222")


def test_host_parts_that_could_not_be_read_blind_only_their_check() -> None:
    facts = host_facts(blind_for={"host_disk": "cannot run df on root@host:2222: denied"})
    with pytest.raises(CouldNotCheck, match="cannot run df"):
        _sighted(facts, CheckRef("s", "host_disk", "@host"), "host")
    assert _sighted(facts, CheckRef("s", "host_memory", "@host"), "host") is facts


def test_host_checks_apply_to_local_and_ssh_engines_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from stackcheck.where import refs

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    check = definition_of(host_checks.test_host_disk)
    assert check is not None
    local = stack()
    assert [r.where for r in refs(local, check)] == ["@host"]
    for address, applies in (
        ("ssh://u@h:22", True),
        ("unix:///x.sock", True),
        ("tcp://h:2376", False),
    ):
        remote = Stack(local.path, "s", "p", local.services, docker_host=address)
        assert bool(refs(remote, check)) is applies, address


# --- logs_clean ---------------------------------------------------------------------------


def test_logs_clean_passes_without_matches() -> None:
    log_checks.test_logs_clean(LogFacts("backend", lines_read=200), stack())


def test_logs_clean_fails_and_shows_the_matching_lines() -> None:
    facts = LogFacts("backend", lines_read=200, match_count=2, matches=["ERROR: one", "FATAL: two"])
    exc = fails(log_checks.test_logs_clean, facts, stack())
    first, *lines = str(exc).splitlines()
    assert first.startswith("2 of the last 200 log lines (tail 200, last 600 s) of backend match ")
    assert lines == ["  | ERROR: one", "  | FATAL: two"]


def test_logs_clean_fails_on_an_error() -> None:
    exc = fails(log_checks.test_logs_clean, LogFacts("backend", error="no container"), stack())
    assert str(exc) == "no container"


# --- net_resolve, net_ping, net_port ------------------------------------------------------

NET = [
    (network_checks.test_net_resolve, "resolve", "resolve", "name 'db' does not resolve"),
    (network_checks.test_net_ping, "ping", "ping", "db does not answer ping"),
    (network_checks.test_net_port, "port_open", "port", "db:5432 does not accept TCP"),
]
NET_IDS = ["net_resolve", "net_ping", "net_port"]


def net(**fields: Any) -> NetFacts:
    base: dict[str, Any] = {"resolve": "ok", "ping": "ok", "port_open": "ok"}
    return NetFacts("backend", "db", 5432, **{**base, **fields})


@pytest.mark.parametrize(("function", "field", "step", "what"), NET, ids=NET_IDS)
def test_net_check_passes_when_ok(
    function: Callable[..., None], field: str, step: str, what: str
) -> None:
    function(net())


@pytest.mark.parametrize(("function", "field", "step", "what"), NET, ids=NET_IDS)
def test_net_check_fails_when_its_step_failed(
    function: Callable[..., None], field: str, step: str, what: str
) -> None:
    exc = fails(function, net(**{field: "failed"}))
    assert str(exc) == f"{what} from inside backend: failed"
    exc = fails(function, net(**{field: "failed", "detail": {step: "timed out after 2 s"}}))
    assert str(exc) == f"{what} from inside backend: timed out after 2 s"


@pytest.mark.parametrize(("function", "field", "step", "what"), NET, ids=NET_IDS)
def test_net_check_fails_on_an_error(
    function: Callable[..., None], field: str, step: str, what: str
) -> None:
    exc = fails(function, net(error="cannot run anything inside backend: container is exited"))
    assert str(exc) == "cannot run anything inside backend: container is exited"


# --- blind facts: the fixtures' "could not check" ------------------------------------------


def test_blind_facts_could_not_check() -> None:
    ref = CheckRef("s", "container_running", "backend")
    blind = ContainerFacts("backend", blind="Docker engine unreachable at unix:///x")
    with pytest.raises(CouldNotCheck, match=r"^Docker engine unreachable at unix:///x$"):
        _sighted(blind, ref, "container")


def test_missing_facts_could_not_check() -> None:
    ref = CheckRef("s", "pg_ready", "db")
    with pytest.raises(CouldNotCheck, match="no pg facts were gathered for db"):
        _sighted(None, ref, "pg")


def test_sighted_facts_come_through_unchanged() -> None:
    facts = pg()
    assert _sighted(facts, CheckRef("s", "pg_ready", "db"), "pg") is facts


def test_net_blind_for_one_check_blinds_only_that_check() -> None:
    facts = net(ping="unavailable", blind_for={"net_ping": "ping is not in backend's image"})
    blinded = CheckRef("s", "net_ping", "backend", "db")
    with pytest.raises(CouldNotCheck, match=r"^ping is not in backend's image$"):
        _sighted(facts, blinded, "net")
    for other in ("net_resolve", "net_port"):
        assert _sighted(facts, CheckRef("s", other, "backend", "db"), "net") is facts


def test_the_plugin_has_a_fixture_for_every_fact_a_check_may_read() -> None:
    # @check derives a check's facts from FACT_FIXTURES names among its parameters;
    # a name without its fixture would make every such check an error.
    import stackcheck.plugin
    from stackcheck.definition import FACT_FIXTURES

    missing = [n for n in FACT_FIXTURES if not callable(getattr(stackcheck.plugin, n, None))]
    assert missing == []
