"""PostgreSQL readiness and connection headroom, from the host through the DSN.

One connection attempt answers both questions. Its outcome is read the way
pg_isready reads PQping's (any answer from the server, even a refusal of our
credentials, means it is accepting connections); libpq's own PQping is not
used because it holds the GIL while it waits, stalling every other probe.
The headroom query runs in a read-only session with a statement timeout and
holds its connection only for that one query.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stackcheck.probes.facts import PgFacts

TOO_MANY_CONNECTIONS = "53300"
CANNOT_CONNECT_NOW = "57P03"  # starting up, shutting down, in recovery
_NO_RESPONSE = (
    "timeout expired",
    "connection refused",
    "could not connect",
    "no route to host",
    "could not translate host name",
    "server closed the connection unexpectedly",
    "connection timeout",
    "network is unreachable",
)
_REJECTING = ("starting up", "shutting down", "in recovery", "not yet accepting")

HEADROOM_SQL = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())::int
"""


def describe(service: str, dsn: str) -> PgFacts:
    """The target's identity (never its password) for evidence and hints."""
    parts = conninfo_to_dict(dsn)
    return PgFacts(
        service=service,
        user=str(parts.get("user", "")),
        host=str(parts.get("host", "localhost")),
        port=str(parts.get("port", "5432")),
        dbname=str(parts.get("dbname", parts.get("user", ""))),
    )


def _outcome(exc: psycopg.Error) -> str:
    text = str(exc).lower()
    if getattr(exc, "sqlstate", None) == CANNOT_CONNECT_NOW or any(m in text for m in _REJECTING):
        return "rejecting"
    if any(m in text for m in _NO_RESPONSE) or isinstance(exc, psycopg.errors.ConnectionTimeout):
        return "no response"
    if "invalid" in text and "option" in text:
        return "no attempt"
    return "accepting"  # the server answered, if only to refuse us


def session_conninfo(dsn: str, connect_s: float) -> str:
    """The DSN as the probe uses it: a named, read-only session with a statement timeout."""
    return make_conninfo(
        dsn,
        connect_timeout=max(2, int(connect_s)),  # libpq reads anything lower as 2
        application_name="stackcheck",
        options="-c default_transaction_read_only=on -c statement_timeout=2000",
    )


def probe(service: str, dsn: str, connect_s: float) -> PgFacts:
    facts = describe(service, dsn)
    try:
        with psycopg.connect(session_conninfo(dsn, connect_s), autocommit=True) as conn:
            row = conn.execute(HEADROOM_SQL).fetchone()
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())
        facts.ping = _outcome(exc)
        facts.refused = getattr(exc, "sqlstate", None) == TOO_MANY_CONNECTIONS or (
            "connection slots are reserved" in text or "too many clients" in text
        )
        facts.error = text or type(exc).__name__
        return facts
    facts.ping = "accepting"
    if row is not None:
        facts.max_connections, facts.reserved, facts.in_use = row
    return facts
