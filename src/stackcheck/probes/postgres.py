"""PostgreSQL readiness and connection headroom: from the host through the DSN, or inside.

Two paths, chosen per service in the stack file (``postgres_via``), give the
same facts, so the checks and their verdicts do not depend on the path:

- ``dsn`` (default): psycopg from the checker, through ``postgres_dsn``.
- ``exec``: the runbook's own commands inside the database's container, through
  the engine (``docker compose exec db pg_isready -U user``, then the
  ``pg_stat_activity`` count with psql), so no port needs publishing and a
  remote engine needs no tunnel. pg_isready's exit code is its outcome
  (0 accepting, 1 rejecting, 2 no response, 3 no attempt). psql's password is
  the container's own (its PGPASSWORD, else POSTGRES_PASSWORD, as the official
  image sets it): the checker never reads, passes or prints one.

On the DSN path one connection attempt answers both questions. Its outcome is read the way
pg_isready reads PQping's (any answer from the server, even a refusal of our
credentials, means it is accepting connections); libpq's own PQping is not
used because it holds the GIL while it waits, stalling every other probe.
The headroom query runs in a read-only session with a statement timeout and
holds its connection only for that one query.
"""

from __future__ import annotations

import re
from typing import Any

import docker.errors
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stackcheck.probes import inside, network
from stackcheck.probes.facts import PgFacts
from stackcheck.redact import strip_controls

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
            # Sent by the server at login: no query of its own.
            version = conn.info.parameter_status("server_version") or ""
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
    facts.server_version = version[:64]
    return facts


# $1 = role, $2 = database, $3 = connect timeout in seconds (at least 1: 0 is
# "wait forever" to pg_isready), $4 = the headroom query, $5 = psql's whole
# time limit in seconds (used when the image has `timeout`).
EXEC_SCRIPT = r"""
u="$1"; d="$2"; t="$3"; q="$4"; lim="$5"
for tool in pg_isready psql; do
  command -v "$tool" >/dev/null 2>&1 || { printf '@missing %s\n' "$tool"; exit 0; }
done
said=$(pg_isready -U "$u" -d "$d" -t "$t" 2>&1); rc=$?
printf '@isready %s\n%s\n' "$rc" "$said"
[ "$rc" = 0 ] || exit 0
if command -v timeout >/dev/null 2>&1; then lid="timeout $lim"; else lid=""; fi
said=$(PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD:-}}" PGCONNECT_TIMEOUT="$t" \
  $lid psql -w -X -A -t -q -v ON_ERROR_STOP=1 -U "$u" -d "$d" -c "$q" 2>&1); rc=$?
printf '@psql %s\n%s\n' "$rc" "$said"
"""

# pg_isready's exit codes.
ISREADY_OUTCOMES = {0: "accepting", 1: "rejecting", 2: "no response", 3: "no attempt"}
# "/var/run/postgresql:5432 - accepting connections": where pg_isready asked.
_ISREADY_WHERE = re.compile(r"([^\s:]{1,200}):(\d{1,5}) - ")
_HEADROOM_ROW = re.compile(r"(\d{1,9})\|(\d{1,9})\|(\d{1,9})")
# What is kept of a tool's message in the evidence.
MESSAGE_CAP = 300
# The session psql runs in: as on the DSN path, named, read-only, bounded.
EXEC_ENV = {
    "PGAPPNAME": "stackcheck",
    "PGOPTIONS": "-c default_transaction_read_only=on -c statement_timeout=2000",
}


def describe_exec(service: str, user: str, dbname: str) -> PgFacts:
    """The in-container target's identity, before pg_isready says where it asked."""
    return PgFacts(service=service, user=user, host=f"inside {service}", port="", dbname=dbname)


def _message(lines: list[str]) -> str:
    text = " ".join(strip_controls(" ".join(lines)).split())
    return text if len(text) <= MESSAGE_CAP else text[:MESSAGE_CAP] + "…"


def _sections(text: str) -> dict[str, tuple[str, list[str]]]:
    """The script's sections: name -> (its first word, the lines under it)."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            name, _, value = line[1:].partition(" ")
            if name in ("missing", "isready", "psql") and name not in found:
                current = []
                found[name] = (value.strip(), current)
                continue
        if current is not None and len(current) < 20:
            current.append(line)
    return found


def parse_exec(facts: PgFacts, text: str, container: str) -> PgFacts:
    """Fill ``facts`` from what EXEC_SCRIPT printed (hostile input: parsed strictly)."""
    sections = _sections(text)
    if "missing" in sections:
        tool = sections["missing"][0][:40] or "a tool"
        facts.blind = (
            f"{_message([tool])} is not in {container}'s image: install the PostgreSQL "
            "client there, or check through the DSN (postgres_via = 'dsn')"
        )
        return facts
    if "isready" not in sections:
        facts.blind = f"pg_isready in {container} printed no answer: {_message(text.splitlines())}"
        return facts
    code, said = sections["isready"]
    outcome = ISREADY_OUTCOMES.get(int(code)) if code.isdigit() and len(code) < 4 else None
    if outcome is None:
        facts.blind = f"pg_isready in {container} exited {_message([code])}: {_message(said)}"
        return facts
    where = _ISREADY_WHERE.match(strip_controls(said[0]) if said else "")
    if where:
        facts.host, facts.port = where.group(1), where.group(2)
    facts.ping = outcome
    if outcome != "accepting":
        facts.error = f"pg_isready: {_message(said) or outcome}"
        return facts
    if "psql" not in sections:
        facts.error = f"psql in {container} gave no answer"
        return facts
    code, said = sections["psql"]
    row = _HEADROOM_ROW.fullmatch(said[0].strip()) if code == "0" and len(said) >= 1 else None
    if row is None:
        message = _message(said) or f"psql exited {_message([code])}"
        facts.refused = "connection slots are reserved" in message or (
            "too many clients" in message
        )
        facts.error = message if code != "124" else f"psql timed out: {message}"
        return facts
    facts.max_connections, facts.reserved, facts.in_use = (int(g) for g in row.groups())
    return facts


def exec_probe(container: Any, service: str, user: str, dbname: str, connect_s: float) -> PgFacts:
    """pg_isready, then the headroom query with psql, inside ``container`` (one exec)."""
    facts = describe_exec(service, user, dbname)
    wait = max(1, int(connect_s))
    argv = [
        "sh",
        "-c",
        EXEC_SCRIPT,
        "stackcheck",
        user,
        dbname,
        str(wait),
        " ".join(HEADROOM_SQL.split()),
        str(wait + 3),
    ]
    try:
        ran = inside.run(container, argv, environment=EXEC_ENV)
    except docker.errors.APIError as exc:
        network.file_refusal(facts, exc, f"pg_isready in {container.name}")
        if facts.error:  # paused or stopped: the server cannot answer
            facts.ping = "no response"
        return facts
    text = (ran.stdout + ran.stderr).decode("utf-8", errors="replace")
    return parse_exec(facts, text, container.name)
