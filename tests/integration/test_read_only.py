"""The suite inspects; it never changes the stack, and its database session cannot write."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from stackcheck.probes.postgres import session_conninfo
from tests.checkrun import run_checks


def _state(testbed) -> dict[str, tuple]:
    found = {}
    for service in ("backend", "db"):
        attrs = testbed.container(service).attrs
        state = attrs["State"]
        found[service] = (attrs["Id"], state["Status"], state["StartedAt"], attrs["RestartCount"])
    return found


def test_a_run_leaves_containers_and_sessions_as_they_were(testbed, tmp_path: Path) -> None:
    stack = testbed.write_stack_file(tmp_path / "stack.toml")
    before = _state(testbed)
    run = run_checks("--stack", str(stack), tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:]
    assert _state(testbed) == before
    with psycopg.connect(testbed.dsn, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stackcheck'"
        ).fetchone()
    assert left == (0,)


def _show(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute(f"SHOW {name}").fetchone()
    assert row is not None
    value = row[0]
    # The testbed's database is SQL_ASCII, for which psycopg returns bytes.
    return value.decode() if isinstance(value, bytes) else str(value)


def test_the_probe_session_is_read_only_with_a_statement_timeout(testbed) -> None:
    try:
        with psycopg.connect(session_conninfo(testbed.dsn, 3), autocommit=True) as conn:
            assert _show(conn, "statement_timeout") == "2s"
            assert _show(conn, "application_name") == "stackcheck"
            assert _show(conn, "default_transaction_read_only") == "on"
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("CREATE TABLE stackcheck_must_not_exist (x int)")
    finally:
        # The refused write leaves an ERROR line in the db log: later runs would see it.
        testbed.reset()
