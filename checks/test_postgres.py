"""Runbook Step 2: is the database accepting connections, with slots and disk to spare?"""

from stackcheck import Command, Fix, Layer, Safety, check, expect
from stackcheck.config import Stack
from stackcheck.probes.facts import DataFsFacts, PgFacts
from stackcheck.runbook import (
    ALL,
    DIAGNOSE_DATA_DISK,
    DIAGNOSE_DATABASE,
    RESOLVE_CONNECTIONS,
    RESOLVE_DATA_DISK,
    RESOLVE_DATABASE,
    RESTART,
    RESTART_DEPENDENTS,
)

ALERTS = (*ALL, "database_connection_failed")


def _postgres(service: object) -> bool:
    # A DSN, or the in-container path (postgres_via = "exec") with its role.
    return bool(getattr(service, "postgres", None) or getattr(service, "postgres_dsn", None))


def _server(pg: PgFacts) -> str:
    # The in-container path before pg_isready said where it asked: "inside db".
    return f"{pg.host}:{pg.port}" if pg.port else pg.host


def _psql(sql: str) -> Command:
    return Command(
        f'$compose exec $service psql -U $pg_user -d $pg_dbname -c "{sql}"', Safety.READ_ONLY
    )


@check(
    title="PostgreSQL accepts connections",
    layer=Layer.READINESS,
    rank=0,
    step=DIAGNOSE_DATABASE,
    fix=Fix(
        RESOLVE_DATABASE,
        (
            Command("$compose exec $service pg_isready -U $pg_user", Safety.READ_ONLY),
            RESTART,
            RESTART_DEPENDENTS,
        ),
    ),
    alerts=(*ALERTS, "health_check_failing"),
    applies=_postgres,
)
def test_pg_ready(pg: PgFacts) -> None:
    meaning = {
        "rejecting": "the server is up but rejecting connections (starting up or shutting down)",
        "no response": "no response from the server (down, frozen, or unreachable)",
        "no attempt": "no attempt made (bad connection parameters)",
    }
    expect(
        pg.ping == "accepting",
        f"pg_isready on {_server(pg)}: {pg.ping}: {meaning.get(pg.ping, pg.ping)}",
    )


@check(
    title="PostgreSQL has free connection slots",
    layer=Layer.READINESS,
    rank=1,
    step=DIAGNOSE_DATABASE,
    fix=Fix(
        RESOLVE_CONNECTIONS,
        (
            _psql("SELECT count(*) FROM pg_stat_activity;"),
            _psql(
                "SELECT usename, application_name, state, count(*) "
                "FROM pg_stat_activity GROUP BY 1, 2, 3 ORDER BY 4 DESC;"
            ),
            RESTART_DEPENDENTS,
        ),
    ),
    alerts=(*ALERTS, "high_error_rate"),
    applies=_postgres,
)
def test_pg_connections(pg: PgFacts, stack: Stack) -> None:
    expect(
        not pg.refused,
        f"{_server(pg)} refuses new connections for user '{pg.user}': out of connection "
        f"slots ({pg.error})",
    )
    expect(pg.error is None, f"cannot count connections on {_server(pg)}: {pg.error}")
    # Reserved slots (superuser_reserved_connections, reserved_connections) are
    # not the application's: a server is full for it when the rest are taken.
    usable = pg.usable or 0
    in_use = pg.in_use or 0
    expect(usable > 0, f"{_server(pg)}: max_connections leaves no usable slots")
    percent = 100 * in_use / usable
    threshold = stack.thresholds.pg_connections_percent
    expect(
        percent < threshold,
        f"{in_use} of {usable} usable connections in use ({percent:.0f}% >= {threshold:g}%; "
        f"max_connections {pg.max_connections}, {pg.reserved} reserved)",
    )


@check(
    title="the database's data filesystem has free space",
    layer=Layer.RESOURCES,
    step=DIAGNOSE_DATA_DISK,
    fix=Fix(
        RESOLVE_DATA_DISK,
        (
            Command("$compose exec $service df -h $data_dir", Safety.READ_ONLY),
            Command(
                "$compose exec $service du -sh $data_dir/base $data_dir/pg_wal", Safety.READ_ONLY
            ),
            _psql(
                "SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff("
                "pg_current_wal_lsn(), restart_lsn)) FROM pg_replication_slots;"
            ),
            Command("$docker system df -v", Safety.READ_ONLY),
        ),
    ),
    alerts=ALERTS,
    applies=_postgres,
)
def test_pg_data_disk(datafs: DataFsFacts, stack: Stack) -> None:
    expect(datafs.error is None, datafs.error or "")
    percent = datafs.used_percent
    threshold = stack.thresholds.data_disk_percent
    expect(
        percent < threshold,
        f"the filesystem of {datafs.path} ({datafs.mount}) is {percent:.0f}% full "
        f"(>= {threshold:g}%): {datafs.avail_kb / 1024:.0f} MiB free of "
        f"{datafs.size_kb / 1024:.0f} MiB; PostgreSQL stops when it fills",
    )
