"""PostgreSQL readiness and connection headroom, from the host through the DSN.

The readiness probe is libpq's PQping, the same call pg_isready makes, so its
four outcomes are pg_isready's. The headroom query runs in a read-only session
with a statement timeout and holds its connection only for that one query.
"""

from __future__ import annotations

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stackcheck.probes.facts import PgFacts

PING_OUTCOMES = {
    pq.Ping.OK: "accepting",
    pq.Ping.REJECT: "rejecting",
    pq.Ping.NO_RESPONSE: "no response",
    pq.Ping.NO_ATTEMPT: "no attempt",
}
TOO_MANY_CONNECTIONS = "53300"

HEADROOM_SQL = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int
"""


def _conninfo(dsn: str, connect_s: float, statement_ms: int) -> str:
    return make_conninfo(
        dsn,
        connect_timeout=max(2, int(connect_s)),  # libpq rounds anything lower up to 2
        application_name="stackcheck",
        options=f"-c default_transaction_read_only=on -c statement_timeout={statement_ms}",
    )


def describe(dsn: str) -> PgFacts:
    """The target's identity (never its password) for evidence and hints."""
    parts = conninfo_to_dict(dsn)
    return PgFacts(
        service="",
        user=str(parts.get("user", "")),
        host=str(parts.get("host", "localhost")),
        port=str(parts.get("port", "5432")),
        dbname=str(parts.get("dbname", parts.get("user", ""))),
    )


def ping(dsn: str, connect_s: float) -> str:
    return PING_OUTCOMES.get(
        pq.Ping(pq.PGconn.ping(_conninfo(dsn, connect_s, 1000).encode())), "no attempt"
    )


def headroom(facts: PgFacts, dsn: str, connect_s: float) -> PgFacts:
    try:
        with psycopg.connect(_conninfo(dsn, connect_s, 2000), autocommit=True) as conn:
            row = conn.execute(HEADROOM_SQL).fetchone()
    except psycopg.Error as exc:
        facts.refused = getattr(exc, "sqlstate", None) == TOO_MANY_CONNECTIONS or (
            "connection slots are reserved" in str(exc) or "too many clients" in str(exc)
        )
        facts.error = " ".join(str(exc).split()) or type(exc).__name__
        return facts
    if row is not None:
        facts.max_connections, facts.reserved, facts.in_use = row
    return facts
