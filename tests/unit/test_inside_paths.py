"""The in-container PostgreSQL and health paths (postgres_via / health_via = "exec").

Pure logic: the stack file keys, the parsing of what the fixed scripts print
(hostile outputs included), the bounded reading of an exec, and the dispatch.
The real scripts against real containers are in
tests/integration/test_unpublished_db.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from stackcheck.config import Service, Stack, StackFileError, Timeouts, load_stack
from stackcheck.probes import http, inside, postgres
from stackcheck.probes.deadline import Deadline
from stackcheck.probes.facts import PgFacts
from stackcheck.probes.gather import Need, gather, through_engine

# ------------------------------------------------------------------ stack file


def _load(tmp_path: Path, service: str) -> Service:
    path = tmp_path / "stack.toml"
    path.write_text(f'[stack]\nname = "s"\ncompose_project = "p"\n\n[services.db]\n{service}\n')
    return load_stack(path).services["db"]


def test_defaults_are_the_checker_side_paths(tmp_path: Path) -> None:
    db = _load(tmp_path, 'postgres_dsn = "postgresql://app@localhost/app"')
    assert (db.postgres_via, db.health_via, db.postgres_user, db.postgres_db) == (
        "dsn",
        "host",
        None,
        None,
    )
    assert db.postgres and through_engine(db, "pg") is False


def test_exec_takes_user_and_database_from_the_keys(tmp_path: Path) -> None:
    db = _load(tmp_path, 'postgres_via = "exec"\npostgres_user = "app"\npostgres_db = "sched"')
    assert (db.postgres_user, db.postgres_db, db.postgres_dsn) == ("app", "sched", None)
    assert db.postgres and through_engine(db, "pg") and not through_engine(db, "http")


def test_exec_reads_user_and_database_from_a_dsn_without_password(tmp_path: Path) -> None:
    db = _load(tmp_path, 'postgres_via = "exec"\npostgres_dsn = "postgresql://app@/sched"')
    assert (db.postgres_user, db.postgres_db) == ("app", "sched")
    db = _load(tmp_path, 'postgres_via = "exec"\npostgres_dsn = "user=app"')
    assert (db.postgres_user, db.postgres_db) == ("app", "app")  # psql's default database


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ('postgres_via = "tunnel"', "'services.db.postgres_via' must be 'dsn' or 'exec'"),
        ('health_via = "ssh"', "'services.db.health_via' must be 'host' or 'exec'"),
        ('postgres_via = "exec"', "needs 'services.db.postgres_user'"),
        ('postgres_via = "dsn"', "'services.db.postgres_via' = 'dsn' needs"),
        (
            'postgres_dsn = "postgresql://a@h/d"\npostgres_user = "a"',
            "'services.db.postgres_user' applies only with",
        ),
        ('postgres_db = "d"', "'services.db.postgres_db' applies only with"),
        (
            'postgres_via = "exec"\npostgres_dsn = "postgresql://a:s3cret@h/d"',
            "holds a password, which postgres_via = 'exec' never uses",
        ),
        ('health_via = "exec"', "needs 'services.db.health_url'"),
        ('postgres_via = "exec"\npostgres_user = "a\\u001b[2Jb"', "must be printable text"),
        ('postgres_via = "exec"\npostgres_user = ""', "must be printable text"),
        (f'postgres_via = "exec"\npostgres_user = "{"u" * 64}"', "of 1 to 63 characters"),
        ('postgres_via = "exec"\npostgres_user = "a"\npostgres_db = "d\\n"', "printable"),
        ("postgres_via = 1", "must be a string"),
    ],
)
def test_a_wrong_path_key_is_one_line_naming_it(tmp_path: Path, lines: str, says: str) -> None:
    with pytest.raises(StackFileError) as raised:
        _load(tmp_path, lines)
    message = str(raised.value)
    assert says in message and "\n" not in message and "\x1b" not in message
    assert "s3cret" not in message


# ------------------------------------------------------- pg_isready and psql


def _pg(text: str) -> PgFacts:
    return postgres.parse_exec(postgres.describe_exec("db", "app", "app"), text, "p-db-1")


def test_accepting_with_a_headroom_row() -> None:
    facts = _pg("@isready 0\n/var/run/postgresql:5432 - accepting connections\n@psql 0\n30|3|22\n")
    assert (facts.ping, facts.error, facts.blind) == ("accepting", None, None)
    assert (facts.max_connections, facts.reserved, facts.in_use, facts.usable) == (30, 3, 22, 27)
    assert (facts.host, facts.port) == ("/var/run/postgresql", "5432")


@pytest.mark.parametrize(
    ("code", "outcome"), [(1, "rejecting"), (2, "no response"), (3, "no attempt")]
)
def test_pg_isready_s_exit_code_is_the_outcome_and_the_stack_s_fault(
    code: int, outcome: str
) -> None:
    facts = _pg(f"@isready {code}\n/var/run/postgresql:5432 - {outcome}\n")
    assert facts.ping == outcome and facts.blind is None
    assert facts.error == f"pg_isready: /var/run/postgresql:5432 - {outcome}"
    assert facts.in_use is None


@pytest.mark.parametrize("tool", ["pg_isready", "psql"])
def test_a_missing_client_is_could_not_check(tool: str) -> None:
    facts = _pg(f"@missing {tool}\n")
    assert facts.blind is not None and facts.error is None
    assert facts.blind.startswith(f"{tool} is not in p-db-1's image")
    assert "postgres_via = 'dsn'" in facts.blind


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sh: 1: exec: not found\n",
        "@isready x\nwhatever\n",
        "@isready 99999\n",
        "@isready 7\nodd\n",
        "\x1b]0;pwned\x07@isready 0\n",  # not at the start of a line: not the marker
    ],
)
def test_output_that_is_not_the_script_s_is_blindness_never_a_verdict(text: str) -> None:
    facts = _pg(text)
    assert facts.blind is not None and facts.ping == "no attempt" and facts.error is None
    assert "\x1b" not in facts.blind and "\x07" not in facts.blind


@pytest.mark.parametrize(
    "row",
    ["30|3", "30|3|22|1", "-1|3|22", "30|3|x", "9999999999|3|22", "30 | 3 | 22", ""],
)
def test_a_row_that_is_not_three_counts_is_an_error_not_numbers(row: str) -> None:
    facts = _pg(f"@isready 0\nok\n@psql 0\n{row}\n")
    assert facts.ping == "accepting" and facts.max_connections is None
    assert facts.error


def test_psql_out_of_slots_is_refused() -> None:
    said = "psql: error: connection to server on socket ... failed: FATAL:  sorry, too many clients"
    facts = _pg(f"@isready 0\nok\n@psql 2\n{said}\n")
    assert facts.refused and facts.ping == "accepting"
    assert facts.error is not None and "too many clients" in facts.error


def test_psql_killed_by_timeout_says_so() -> None:
    facts = _pg("@isready 0\nok\n@psql 124\n")
    assert facts.error == "psql timed out: psql exited 124"


def test_hostile_messages_are_stripped_and_capped() -> None:
    said = "\x1b[2J\x1b]8;;http://evil\x07" + "A" * 5000 + "\r\x00"
    facts = _pg(f"@isready 2\n{said}\n")
    assert facts.error is not None
    assert len(facts.error) <= len("pg_isready: ") + postgres.MESSAGE_CAP + 1
    assert all(c.isprintable() for c in facts.error)
    # A hostile "where" is not taken as the server's address.
    facts = _pg("@isready 0\n\x1b[31mhost with spaces:5432 - accepting\n@psql 0\n1|0|0\n")
    assert facts.host == "inside db" and facts.port == ""


def test_only_the_first_section_of_each_name_counts() -> None:
    facts = _pg("@isready 2\nno response\n@isready 0\n@psql 0\n30|3|0\n")
    assert facts.ping == "no response" and facts.in_use is None


# -------------------------------------------------------------------- curl


def _curl(stdout: bytes, stderr: str) -> http.CurlAnswer:
    return http.parse_curl(stdout, stderr.encode(), "p-backend-1")


def test_curl_answer_with_status_time_and_body() -> None:
    answer = _curl(b'{"status":"ok"}', "@curl 200 0.012 0.001 \n@exit 0\n")
    assert (answer.exit_code, answer.status, answer.elapsed_s, answer.connected) == (
        0,
        200,
        0.012,
        True,
    )
    assert answer.body == '{"status":"ok"}' and answer.location == ""


@pytest.mark.parametrize("tool", ["curl", "head"])
def test_a_missing_curl_or_head_is_could_not_check(tool: str) -> None:
    answer = _curl(b"", f"@missing {tool}\n")
    assert answer.blind is not None and answer.blind.startswith(f"{tool} is not in p-backend-1's")


@pytest.mark.parametrize(
    "stderr",
    ["", "@exit\n", "@exit 1234\n", "%{stderr}@curl 200 0.1 0.1 \n", "@curl 200 0.1 0.1\n"],
)
def test_unreadable_curl_output_is_could_not_check(stderr: str) -> None:
    assert _curl(b"", stderr).blind is not None


def test_old_curl_without_stderr_write_out_is_named() -> None:
    answer = _curl(b"%{stderr}@curl 200 0.1 0.1 \n", "@exit 0\n")
    assert answer.blind is not None and "7.63" in answer.blind


def test_the_body_is_capped_and_curl_s_message_stripped() -> None:
    answer = _curl(
        b"x" * (http.BODY_CAP * 3), "curl: (23) \x1b[2Jfailure writing\n@curl 200 1 1 \n@exit 23\n"
    )
    assert len(answer.body) == http.BODY_CAP
    assert answer.said == "curl: (23) failure writing"


@pytest.mark.parametrize(
    ("code", "connect", "said", "reason"),
    [
        (7, "0", "curl: (7) Failed to connect: Connection refused", "connection refused"),
        (7, "0", "curl: (7) Failed to connect: No route to host", "connection failed"),
        (6, "0", "curl: (6) Could not resolve host: x", "host name does not resolve"),
        (28, "0", "curl: (28) Connection timed out", "connect timed out"),
        (28, "0.002", "curl: (28) Operation timed out", "no answer (read timed out)"),
        (52, "0.001", "curl: (52) Empty reply from server", "server closed the connection"),
        (35, "0.001", "curl: (35) TLS", "TLS error"),
    ],
)
def test_curl_failures_read_as_the_host_path_words_them(
    code: int, connect: str, said: str, reason: str
) -> None:
    answer = _curl(b"", f"{said}\n@curl 000 1.0 {connect} \n@exit {code}\n")
    assert answer.blind is None and answer.status is None
    assert http._curl_reason(code, answer.connected, answer.said).startswith(reason)


# ------------------------------------------------------- exec through a fake API


class FakeAPI:
    """docker's low-level exec calls, answering from a script of (stdout, stderr, exit)."""

    def __init__(self, answers: list[tuple[bytes, bytes, int]], refuse: str = "") -> None:
        self.answers = answers
        self.refuse = refuse
        self.calls: list[list[str]] = []
        self.environments: list[dict[str, str]] = []
        self.closed = 0
        self.close_refused = False  # as docker-py's stream over ssh://

    def exec_create(self, cid: str, argv: list[str], **kwargs: Any) -> dict[str, str]:
        if self.refuse:
            response = requests.Response()
            response.status_code = 409
            raise docker.errors.APIError("409", response, explanation=self.refuse)
        self.calls.append(argv)
        self.environments.append(kwargs.get("environment") or {})
        return {"Id": str(len(self.calls) - 1)}

    def exec_start(self, exec_id: str, stream: bool, demux: bool) -> Iterator[Any]:
        out, err, _ = self.answers[int(exec_id)]
        api = self

        class Stream:
            def __iter__(self) -> Iterator[tuple[bytes | None, bytes | None]]:
                for i in range(0, max(len(out), len(err)), 1024):
                    yield out[i : i + 1024] or None, err[i : i + 1024] or None

            def close(self) -> None:
                api.closed += 1
                if api.close_refused:
                    raise docker.errors.DockerException(
                        "Cancellable streams not supported for the SSH protocol"
                    )

        return Stream()  # type: ignore[return-value]

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": self.answers[int(exec_id)][2]}


class FakeContainer:
    def __init__(self, api: FakeAPI) -> None:
        self.client = type("Client", (), {"api": api})()
        self.id = "c0ffee"
        self.name = "p-svc-1"


def test_inside_run_stops_reading_at_the_cap() -> None:
    api = FakeAPI([(b"y" * (inside.OUTPUT_CAP * 4), b"", 0)])
    ran = inside.run(FakeContainer(api), ["sh"])
    assert ran.truncated and len(ran.stdout) == inside.OUTPUT_CAP and ran.exit_code is None
    assert api.closed == 1


def test_a_stream_that_cannot_be_cancelled_over_ssh_still_answers() -> None:
    api = FakeAPI([(b"y" * (inside.OUTPUT_CAP * 4), b"", 0), (b"ok\n", b"", 0)])
    api.close_refused = True
    ran = inside.run(FakeContainer(api), ["sh"])
    assert ran.truncated and len(ran.stdout) == inside.OUTPUT_CAP
    ran = inside.run(FakeContainer(api), ["sh"])
    assert (ran.stdout, ran.exit_code) == (b"ok\n", 0)
    assert api.closed == 2


def test_exec_probe_passes_names_as_arguments_and_no_password() -> None:
    api = FakeAPI([(b"@isready 0\nx:5432 - accepting connections\n@psql 0\n30|3|1\n", b"", 0)])
    user, db = "a'; rm -rf / #", "$(reboot)"
    facts = postgres.exec_probe(FakeContainer(api), "db", user, db, 3.0)
    assert facts.in_use == 1 and facts.ping == "accepting"
    argv = api.calls[0]
    assert argv[:2] == ["sh", "-c"] and argv[2] == postgres.EXEC_SCRIPT  # fixed script text
    assert argv[4:7] == [user, db, "3"]
    assert not any("PASSWORD" in k for k in api.environments[0])
    assert api.environments[0]["PGAPPNAME"] == "stackcheck"


def test_exec_probe_waits_at_least_a_second() -> None:
    # pg_isready -t 0 would wait forever.
    api = FakeAPI([(b"@isready 0\nok\n@psql 0\n1|0|0\n", b"", 0)])
    postgres.exec_probe(FakeContainer(api), "db", "a", "a", 0.2)
    assert api.calls[0][6] == "1"


@pytest.mark.parametrize(
    ("refusal", "blind"),
    [("Container c0ffee is paused, unpause the container", False), ("no such exec", True)],
)
def test_exec_probe_refused(refusal: str, blind: bool) -> None:
    facts = postgres.exec_probe(FakeContainer(FakeAPI([], refuse=refusal)), "db", "a", "a", 3)
    if blind:
        assert facts.blind and facts.error is None and facts.ping == "no attempt"
    else:
        assert facts.error and facts.blind is None and facts.ping == "no response"


def _hop(status: int, location: str = "", body: bytes = b"", code: int = 0) -> tuple:
    return (body, f"@curl {status} 0.01 0.001 {location}\n@exit {code}\n".encode(), 0)


def test_exec_health_follows_same_origin_redirects_only() -> None:
    api = FakeAPI(
        [
            _hop(301, "http://127.0.0.1:8000/health/"),
            _hop(200, body=b'{"status":"ok"}'),
        ]
    )
    url = "http://127.0.0.1:8000/health"
    facts = http.exec_facts(FakeContainer(api), "backend", url, Deadline(5), 1.0)
    assert (facts.status, facts.json_status, facts.error) == (200, "ok", None)
    assert [call[4] for call in api.calls] == [url, "http://127.0.0.1:8000/health/"]
    assert all(call[2] == http.EXEC_SCRIPT for call in api.calls)

    api = FakeAPI([_hop(302, "http://login.example/")])
    facts = http.exec_facts(FakeContainer(api), "backend", url, Deadline(5), 1.0)
    assert facts.error == (
        f"GET {url} answered 302 redirecting to http://login.example/ (another host: not followed)"
    )


def test_exec_health_500_keeps_status_and_body() -> None:
    api = FakeAPI([_hop(500, body=b'{"status":"error"}')])
    facts = http.exec_facts(FakeContainer(api), "b", "http://x:8000/h", Deadline(5), 1.0)
    assert (facts.status, facts.body, facts.json_status, facts.error) == (
        500,
        '{"status":"error"}',
        "error",
        None,
    )


def test_exec_health_connection_refused_is_the_stack_s_fault() -> None:
    said = b"curl: (7) Failed to connect to x port 8000: Connection refused\n"
    api = FakeAPI([(b"", said + b"@curl 000 0.001 0 \n@exit 7\n", 0)])
    facts = http.exec_facts(FakeContainer(api), "b", "http://x:8000/h", Deadline(5), 1.0)
    assert facts.error == "GET http://x:8000/h: connection refused" and facts.blind is None


def test_exec_health_with_no_time_left_does_not_start() -> None:
    api = FakeAPI([])
    facts = http.exec_facts(FakeContainer(api), "b", "http://x/h", Deadline(0.2), 1.0)
    assert facts.error is not None and "deadline" in facts.error and api.calls == []


def test_exec_health_curl_limits_fit_in_the_deadline() -> None:
    api = FakeAPI([_hop(200)])
    http.exec_facts(FakeContainer(api), "b", "http://x/h", Deadline(5), 3.0)
    total, connect = float(api.calls[0][5]), float(api.calls[0][6])
    # The exec's own start and end fit in what curl leaves of the deadline.
    assert total <= 5 - http.EXEC_MARGIN_S and connect <= 3.0
    assert http.EXEC_MARGIN_S >= 1.0


# ------------------------------------------------------------------- dispatch


def test_an_unreachable_engine_blinds_the_exec_paths(tmp_path: Path) -> None:
    socket = tmp_path / "nobody.sock"
    stack = Stack(
        path=tmp_path / "s.toml",
        name="s",
        compose_project="p",
        services={
            "db": Service("db", postgres_via="exec", postgres_user="a", postgres_db="a"),
            "api": Service("api", health_url="http://127.0.0.1:8000/h", health_via="exec"),
        },
        docker_host=f"unix://{socket}",
        timeouts=Timeouts(probe_s=5.0, connect_s=1.0),
    )
    facts = gather(stack, {Need("pg", "db"), Need("http", "api")})
    pg, health = facts.pg["db"], facts.http["api"]
    assert pg.blind and pg.blind.startswith("Docker engine unreachable") and pg.error is None
    assert pg.ping == "no attempt" and pg.host == "inside db"
    assert health.blind and "Docker engine unreachable" in health.blind and health.error is None


# -------------------------------------------------- verdicts on in-container facts


def test_same_verdicts_on_in_container_facts() -> None:
    from tests.unit.test_verdicts import fails, postgres_checks, stack

    # pg_isready's exit 2 inside a frozen db: a failure, worded as the DSN path's.
    frozen = _pg("@isready 2\n/var/run/postgresql:5432 - no response\n")
    exc = fails(postgres_checks.test_pg_ready, frozen)
    assert str(exc).startswith("pg_isready on /var/run/postgresql:5432: no response: ")
    exc = fails(postgres_checks.test_pg_connections, frozen, stack())
    assert "cannot count connections on /var/run/postgresql:5432" in str(exc)
    # A stopped container: nothing answers, before pg_isready could say where it asked.
    stopped = postgres.describe_exec("db", "app", "app")
    stopped.ping, stopped.error = "no response", "cannot look inside db: container is exited"
    exc = fails(postgres_checks.test_pg_ready, stopped)
    assert str(exc).startswith("pg_isready on inside db: no response: ")
    near = _pg("@isready 0\n/var/run/postgresql:5432 - accepting connections\n@psql 0\n30|3|22\n")
    exc = fails(postgres_checks.test_pg_connections, near, stack())
    assert str(exc).startswith("22 of 27 usable connections in use (81% >= 80%")
    healthy = _pg("@isready 0\nx:1 - accepting connections\n@psql 0\n30|3|2\n")
    postgres_checks.test_pg_ready(healthy)
    postgres_checks.test_pg_connections(healthy, stack())


def test_postgres_checks_apply_to_an_exec_service_without_a_dsn() -> None:
    from tests.unit.test_verdicts import postgres_checks

    assert postgres_checks._postgres(Service("db", postgres_via="exec", postgres_user="a"))
    assert not postgres_checks._postgres(Service("db"))
