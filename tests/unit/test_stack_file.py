"""A stack file the suite cannot use: exit 4 and one line naming the file and the problem."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from stackcheck import config
from stackcheck.config import (
    MAX_EDGES,
    MAX_FILE_BYTES,
    MAX_SERVICES,
    SCHEMA,
    Stack,
    StackFileError,
    load_stack,
)
from tests.checkrun import run_checks

GOOD = """\
[stack]
name = "s"
compose_project = "p"

[services.api]
depends_on = ["postgres"]
health_url = "http://127.0.0.1:1/health"
port = 8080

[services.postgres]
postgres_dsn = "postgresql://app@127.0.0.1:1/app"
port = 5432
"""

CASES = {
    "broken TOML": ("[stack\nname = 1", "invalid TOML"),
    "unknown service key": (
        GOOD.replace("health_url", "helth_url"),
        "unknown key 'services.api.helth_url'",
    ),
    "unknown stack key": (GOOD.replace('name = "s"', 'name = "s"\nprojet = "x"'), "'stack.projet'"),
    "unknown table": (GOOD + "\n[threshold]\nmemory_percent = 80\n", "unknown table 'threshold'"),
    "unknown threshold": (
        GOOD + "\n[thresholds]\nmemory_pct = 80\n",
        "unknown key 'thresholds.memory_pct'",
    ),
    "wrong type": (GOOD.replace("port = 8080", 'port = "8080"'), "'services.api.port' must be"),
    "port out of range": (GOOD.replace("port = 8080", "port = 80800"), "between 1 and 65535"),
    "boolean for a number": (
        GOOD + "\n[timeouts]\nprobe_s = true\n",
        "'timeouts.probe_s' must be",
    ),
    "missing compose_project": (
        GOOD.replace('compose_project = "p"\n', ""),
        "'stack.compose_project'",
    ),
    "depends on unknown service": (
        GOOD.replace('["postgres"]', '["postgress"]'),
        "unknown service 'postgress'",
    ),
    "not an http URL": (
        GOOD.replace("http://127.0.0.1:1/health", "127.0.0.1/health"),
        "http(s) URL",
    ),
    "bad regex": (GOOD + '\n[logs]\npatterns = ["(unclosed"]\n', "invalid regex"),
    "no services": ('[stack]\nname = "s"\ncompose_project = "p"\n', "no services"),
    "gaps not a list": (
        GOOD.replace("port = 8080", 'port = 8080\ngaps = "net_ping"'),
        "'services.api.gaps' must be a list",
    ),
    "gaps not strings": (
        GOOD.replace("port = 8080", "port = 8080\ngaps = [1]"),
        "'services.api.gaps' must be a list of strings",
    ),
    "gaps name an unknown check": (
        GOOD.replace("port = 8080", 'port = 8080\ngaps = ["net_pong"]'),
        "gaps name unknown checks: net_pong",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_stack_file_is_a_one_line_usage_error(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / "stack.toml"
    path.write_text(text)
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"ERROR: {path}: "), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in run.stdout + run.stderr


def test_missing_stack_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    run = run_checks("--stack", str(missing), tmp_path=tmp_path)
    assert run.returncode == 4
    assert run.stderr.strip() == f"ERROR: {missing}: stack file not found"


def test_bad_dsn_does_not_echo_its_password(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(
        GOOD.replace(
            '"postgresql://app@127.0.0.1:1/app"', '"host=x password=s3cret-canary port=\'"'
        )
    )
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4
    assert "not a valid libpq DSN" in run.stderr
    assert "s3cret-canary" not in run.stdout + run.stderr


def test_good_file_with_other_names_collects_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD)
    run = run_checks("--stack", str(path), "--collect-only", "-q", tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    for test_id in (
        "test_container_running[api]",
        "test_container_running[postgres]",
        "test_net_port[api->postgres]",
        "test_pg_ready[postgres]",
        "test_http_health[api]",
    ):
        assert test_id in run.stdout
    assert "test_pg_ready[api]" not in run.stdout
    assert "test_http_health[postgres]" not in run.stdout


def one_line_error(path: Path, tmp_path: Path) -> str:
    run = run_checks("--stack", str(path), tmp_path=tmp_path)
    assert run.returncode == 4, run.stdout + run.stderr
    lines: list[str] = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    return lines[0]


LONG_NAME = "a" * 100_000


@pytest.mark.parametrize(
    "name",
    ["$(touch {marker})", "-rf", "a b", LONG_NAME],
    ids=["command", "option", "space", "long"],
)
def test_a_service_name_compose_cannot_have_is_rejected(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    name = name.format(marker=marker)
    path = tmp_path / "stack.toml"
    # A TOML basic string, escaped for TOML: the name reaches the loader unchanged.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text(
        GOOD.replace("[services.api]", f'[services."{quoted}"]').replace(
            'depends_on = ["postgres"]\n', ""
        )
    )
    line = one_line_error(path, tmp_path)
    assert line.startswith(f"ERROR: {path}: service name "), line
    assert "is not a compose service name" in line
    # At most 64 characters of the name are echoed, whatever its length.
    assert name[:64] in line
    assert "a" * 65 not in line and len(line) < len(str(path)) + 250
    assert not marker.exists()


def test_the_data_disk_threshold_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD + "\n[thresholds]\ndata_disk_percent = 95\n")
    run = run_checks("--stack", str(path), "--collect-only", "-q", tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_pg_data_disk[postgres]" in run.stdout
    assert load_stack(path).thresholds.data_disk_percent == 95


PERCENTS = sorted(k for k in SCHEMA["thresholds"] if k.endswith("_percent"))


def test_every_percent_threshold_is_known() -> None:
    assert "data_disk_percent" in PERCENTS and len(PERCENTS) >= 4


@pytest.mark.parametrize("key", PERCENTS)
def test_a_percentage_above_100_is_rejected(key: str, tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD + f"\n[thresholds]\n{key} = 100.5\n")
    line = one_line_error(path, tmp_path)
    assert line == f"ERROR: {path}: 'thresholds.{key}' must be at most 100"
    path.write_text(GOOD + f"\n[thresholds]\n{key} = 100\n")
    assert getattr(load_stack(path).thresholds, key) == 100


# -- Hostile stack files: every gap ends in one line, before any probe ---------------------

# Each of these once reached a probe or pytest's INTERNALERROR: run as a user
# does, they are now exit 4 with one line naming the file and the problem.
HOSTILE = {
    "nan deadline": (
        GOOD + "\n[timeouts]\nprobe_s = nan\n",
        "'timeouts.probe_s' must be a finite number, got nan",
    ),
    "unclosed IPv6 host": (
        GOOD.replace("http://127.0.0.1:1/health", "http://[::1"),
        "'services.api.health_url' is not a valid URL (Invalid IPv6 URL)",
    ),
    "arrays nested 100,000 deep": (
        GOOD + "\n[logs]\npatterns = " + "[" * 100_000 + "]" * 100_000 + "\n",
        "invalid TOML: arrays or tables nested too deeply",
    ),
    "inline tables nested 100,000 deep": (
        GOOD + "\n[logs]\npatterns = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n",
        "invalid TOML: arrays or tables nested too deeply",
    ),
    "empty patterns": (GOOD + "\n[logs]\npatterns = []\n", "'logs.patterns' is empty"),
    "unknown inline flag": (
        GOOD + '\n[logs]\npatterns = ["(?z)x"]\n',
        "invalid regex '(?z)x' in 'logs.patterns'",
    ),
    "inline flag not at the start": (
        GOOD + '\n[logs]\npatterns = ["error", "(?i)panic"]\n',
        "invalid regex '(?i)panic' in 'logs.patterns' as the log probe uses it",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_stack_file_is_a_one_line_usage_error(case: str, tmp_path: Path) -> None:
    text, expected = HOSTILE[case]
    path = tmp_path / "stack.toml"
    path.write_text(text)
    line = one_line_error(path, tmp_path)
    assert line.startswith(f"ERROR: {path}: "), line
    assert expected in line, line
    assert "INTERNALERROR" not in line and "unreachable" not in line


def rejected(tmp_path: Path, text: str) -> str:
    """What load_stack says about ``text``, without the file name; it must be one line."""
    path = tmp_path / "stack.toml"
    path.write_text(text)
    with pytest.raises(StackFileError) as info:
        load_stack(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.isprintable(), message
    assert message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def accepted(tmp_path: Path, text: str) -> Stack:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return load_stack(path)


def with_table(table: str, body: str) -> str:
    """GOOD with one more table (services' keys replace services.api's port)."""
    if table == "services.*":
        return GOOD.replace("port = 8080\n", f"{body}\n")
    return GOOD + f"\n[{table}]\n{body}\n"


# Every number of the schema, and where its error names it.
NUMBERS = sorted(
    (table, key)
    for table, keys in SCHEMA.items()
    for key, (kind, _) in keys.items()
    if kind in (int, (int, float))
)


def shown_key(table: str, key: str) -> str:
    return f"'{table.replace('*', 'api')}.{key}'"


def test_every_number_of_the_schema_is_tested() -> None:
    assert ("logs", "tail") in NUMBERS and ("services.*", "port") in NUMBERS
    assert len(NUMBERS) == 14


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize(("table", "key"), NUMBERS)
def test_nan_and_inf_are_rejected_for_every_number(
    table: str, key: str, value: str, tmp_path: Path
) -> None:
    message = rejected(tmp_path, with_table(table, f"{key} = {value}"))
    assert message.startswith(shown_key(table, key)), message
    # Floats are refused as such where integers are due; nowhere are they let through.
    assert "finite number" in message or "must be a integer" in message


@pytest.mark.parametrize(("table", "key"), NUMBERS)
def test_every_number_has_a_maximum_named_in_its_error(
    table: str, key: str, tmp_path: Path
) -> None:
    message = rejected(tmp_path, with_table(table, f"{key} = {10**30}"))
    assert message.startswith(shown_key(table, key)), message
    assert "must be at most " in message or "between 1 and 65535" in message


BOUNDS = {
    # key: (the largest accepted, the smallest refused, its error)
    "thresholds.stable_window_s": (
        86400,
        "86400.5",
        "'thresholds.stable_window_s' must be at most 86400",
    ),
    "timeouts.probe_s": (300, "300.5", "'timeouts.probe_s' must be at most 300"),
    "logs.tail": (10000, "10001", "'logs.tail' must be at most 10000"),
    "logs.since_s": (604800, "604800.5", "'logs.since_s' must be at most 604800"),
    "ssh.connect_timeout_s": (300, "300.5", "'ssh.connect_timeout_s' must be at most 300"),
}


@pytest.mark.parametrize("where", sorted(BOUNDS))
def test_the_maxima_are_inclusive(where: str, tmp_path: Path) -> None:
    table, key = where.split(".")
    maximum, above, error = BOUNDS[where]
    stack = accepted(tmp_path, with_table(table, f"{key} = {maximum}"))
    assert getattr(getattr(stack, table), key) == maximum
    assert rejected(tmp_path, with_table(table, f"{key} = {above}")) == error


def test_connect_s_given_must_fit_within_probe_s(tmp_path: Path) -> None:
    message = rejected(tmp_path, with_table("timeouts", "probe_s = 2\nconnect_s = 2.5"))
    assert message == "'timeouts.connect_s' (2.5) must be at most 'timeouts.probe_s' (2)"
    assert rejected(tmp_path, with_table("timeouts", "connect_s = 6")).startswith(
        "'timeouts.connect_s' (6) must be at most 'timeouts.probe_s' (5)"
    )
    assert accepted(tmp_path, with_table("timeouts", "probe_s = 2\nconnect_s = 2")).timeouts
    # Not given, the default 3 s is cut to probe_s by the gathering, not refused.
    assert accepted(tmp_path, with_table("timeouts", "probe_s = 2")).timeouts.connect_s == 3


def test_an_integer_too_long_to_read_is_a_toml_error(tmp_path: Path) -> None:
    message = rejected(tmp_path, with_table("logs", "tail = 1" + "0" * 5000))
    assert message.startswith("invalid TOML: Exceeds the limit (4300 digits)"), message
    assert "set_int_max_str_digits" not in message


# -- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://[::1", "is not a valid URL (Invalid IPv6 URL): 'http://[::1'"),
        ("http://h:99999/", "is not a valid URL (Port out of range 0-65535)"),
        ("http://h:x/", "is not a valid URL (Port could not be cast to integer value as 'x')"),
        ("http://h:0/", "has port 0; a port is 1 to 65535"),
        ("http://h/a b", "must not contain spaces or control characters"),
        ("http://h/\\tx", "must not contain spaces or control characters"),
        ("http://h/\\u001b]0;pwned\\u0007", "must not contain spaces or control characters"),
        ("http://h/" + "a" * 2048, "is longer than 2048 characters"),
        ("", "must not be empty"),
    ],
    ids=["ipv6", "port-range", "port-text", "port-0", "space", "tab", "osc", "long", "empty"],
)
def test_a_health_url_urlsplit_or_the_probe_refuses_is_one_line(
    url: str, expected: str, tmp_path: Path
) -> None:
    message = rejected(tmp_path, GOOD.replace("http://127.0.0.1:1/health", url))
    assert message.startswith("'services.api.health_url' "), message
    assert expected in message, message
    assert len(message) < 300


def test_a_refused_url_does_not_echo_its_password(tmp_path: Path) -> None:
    url = "http://admin:s3cret-canary@[::1/health"
    message = rejected(tmp_path, GOOD.replace("http://127.0.0.1:1/health", url))
    assert "Invalid IPv6 URL" in message
    assert "s3cret-canary" not in message


@pytest.mark.parametrize("url", ["http://h:/", "https://[::1]:8443/health", "http://h:65535/"])
def test_urls_with_a_valid_or_default_port_still_load(url: str, tmp_path: Path) -> None:
    stack = accepted(tmp_path, GOOD.replace("http://127.0.0.1:1/health", url))
    assert stack.services["api"].health_url == url


def test_docker_host_is_checked_like_an_address(tmp_path: Path) -> None:
    head = 'compose_project = "p"\n'
    bad = GOOD.replace(head, head + 'docker_host = "tcp://h:2375\\nx"\n')
    assert rejected(tmp_path, bad).startswith(
        "'stack.docker_host' must not contain spaces or control characters"
    )
    assert rejected(tmp_path, GOOD.replace(head, head + 'docker_host = ""\n')) == (
        "'stack.docker_host' must not be empty"
    )
    good = GOOD.replace(head, head + 'docker_host = "unix:///var/run/docker.sock"\n')
    assert accepted(tmp_path, good).docker_host == "unix:///var/run/docker.sock"


# -- Only a regular file of at most 1 MiB, and never more read than that --------------


@pytest.fixture
def no_open(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail instead of opening: the file type must be known from os.stat first."""
    opened: list[str] = []

    def refuse(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        raise AssertionError(f"opened {path} before checking its type")

    monkeypatch.setattr(config.os, "open", refuse)
    return opened


def test_a_fifo_is_refused_before_it_is_opened(tmp_path: Path, no_open: list[str]) -> None:
    fifo = tmp_path / "stack.toml"
    os.mkfifo(fifo)
    with pytest.raises(StackFileError) as info:
        load_stack(fifo)
    assert str(info.value) == f"{fifo}: the stack file is a FIFO; it must be a regular file"
    assert no_open == []


def test_a_device_and_a_directory_are_refused_before_they_are_opened(
    tmp_path: Path, no_open: list[str]
) -> None:
    for path, kind in ((Path("/dev/zero"), "a character device"), (tmp_path, "a directory")):
        with pytest.raises(StackFileError) as info:
            load_stack(path)
        assert str(info.value) == f"{path}: the stack file is {kind}; it must be a regular file"
    assert no_open == []


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_not_a_regular_file_is_a_one_line_usage_error(kind: str, tmp_path: Path) -> None:
    path = {"fifo": tmp_path / "fifo.toml", "device": Path("/dev/zero"), "directory": tmp_path}
    target = path[kind]
    if kind == "fifo":
        os.mkfifo(target)
    # A loader that opened the FIFO would wait for a writer: the timeout ends that run.
    run = run_checks("--stack", str(target), tmp_path=tmp_path, timeout=60)
    assert run.returncode == 4, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if kind == "directory":  # a directory of stack files (a fleet), here without any
        assert lines == [f"ERROR: --stack '{target}': no *.toml stack file in it"], run.stderr
        return
    assert lines == [f"ERROR: {target}: " + lines[0].split(": ", 2)[2]], run.stderr
    assert lines[0].endswith("; it must be a regular file"), lines[0]


def test_a_file_over_one_mib_is_refused(tmp_path: Path) -> None:
    padding = MAX_FILE_BYTES - len(GOOD.encode())
    assert MAX_FILE_BYTES == 1024 * 1024
    fits = GOOD + "#" * (padding - 1) + "\n"
    assert len(fits.encode()) == MAX_FILE_BYTES
    assert accepted(tmp_path, fits).name == "s"
    message = rejected(tmp_path, fits + "\n")
    assert message == "the stack file is larger than 1048576 bytes (1 MiB), the limit"


def test_a_file_that_grows_after_its_size_was_read_is_read_no_further_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(GOOD + "#" * (3 * MAX_FILE_BYTES) + "\n")
    real_stat, real_read = os.stat, os.read
    read: list[int] = []

    def small_stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        found = real_stat(target, *args, **kwargs)
        if str(target) != str(path):
            return found
        fields = list(found)
        fields[stat.ST_SIZE] = len(GOOD)  # as it was when stat looked
        return os.stat_result(fields)

    def counted_read(fd: int, size: int) -> bytes:
        chunk = real_read(fd, size)
        read.append(len(chunk))
        return chunk

    monkeypatch.setattr(config.os, "stat", small_stat)
    monkeypatch.setattr(config.os, "read", counted_read)
    with pytest.raises(StackFileError, match=r"larger than 1048576 bytes \(1 MiB\)"):
        load_stack(path)
    assert sum(read) == MAX_FILE_BYTES + 1


# -- Stack size ------------------------------------------------------------------------


def many_services(count: int, deps_each: int = 0) -> str:
    lines = ['[stack]\nname = "s"\ncompose_project = "p"\n']
    for i in range(count):
        deps = [f"s{(i + k) % count}" for k in range(1, deps_each + 1)]
        lines.append(f"[services.s{i}]\ndepends_on = {json.dumps(deps)}\n")
    return "\n".join(lines)


def test_at_most_200_services(tmp_path: Path) -> None:
    assert MAX_SERVICES == 200
    assert len(accepted(tmp_path, many_services(200)).services) == 200
    assert rejected(tmp_path, many_services(201)) == (
        "201 services; a stack file may declare at most 200"
    )


def test_at_most_1000_depends_on_edges_in_all(tmp_path: Path) -> None:
    assert MAX_EDGES == 1000
    assert len(accepted(tmp_path, many_services(200, deps_each=5)).edges()) == 1000
    one_more = many_services(200, deps_each=5).replace(
        'depends_on = ["s1", "s2", "s3", "s4", "s5"]',
        'depends_on = ["s1", "s2", "s3", "s4", "s5", "s6"]',
    )
    assert rejected(tmp_path, one_more) == (
        "1001 depends_on edges in all; a stack file may declare at most 1000"
    )


def test_a_dependency_or_gap_listed_twice_is_refused(tmp_path: Path) -> None:
    twice = GOOD.replace('["postgres"]', '["postgres", "postgres"]')
    assert rejected(tmp_path, twice) == "'services.api.depends_on' lists 'postgres' twice"
    gaps = with_table("services.*", 'gaps = ["net_ping", "net_ping"]')
    assert rejected(tmp_path, gaps) == "'services.api.gaps' lists 'net_ping' twice"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "a\\u001b[2Jb", "line\\nbreak", "nul\\u0000", "rtl\\u202eeman", "x" * 101],
    ids=["empty", "blank", "ansi", "newline", "nul", "bidi", "long"],
)
def test_a_stack_name_must_be_printable_text_of_at_most_100_characters(
    name: str, tmp_path: Path
) -> None:
    message = rejected(tmp_path, GOOD.replace('name = "s"', f'name = "{name}"'))
    assert message.startswith("'stack.name' "), message
    assert message.endswith("must be printable text of 1 to 100 characters (no control characters)")
    assert "x" * 65 not in message


@pytest.mark.parametrize(
    "name", ["residency scheduler (prod)", "../../etc/x y", "Résidence", "x" * 100]
)
def test_a_display_name_may_be_any_printable_text(name: str, tmp_path: Path) -> None:
    assert accepted(tmp_path, GOOD.replace('name = "s"', f'name = "{name}"')).name == name


@pytest.mark.parametrize(
    "project",
    ["My.Proj", "Upper", "-x", "_x", "a b", "", "a.b", "ä", "a;id", "x" * 256],
)
def test_a_compose_project_follows_compose_s_rule(project: str, tmp_path: Path) -> None:
    text = GOOD.replace('compose_project = "p"', f'compose_project = "{project}"')
    message = rejected(tmp_path, text)
    assert message.startswith("'stack.compose_project' "), message
    assert message.endswith(
        "is not a compose project name (lowercase letters, digits, '_', '-', "
        "starting with a letter or digit; at most 255 characters)"
    )


@pytest.mark.parametrize("project", ["residency-scheduler", "a_b-1", "1abc", "x" * 255])
def test_compose_project_names_compose_accepts_still_load(project: str, tmp_path: Path) -> None:
    text = GOOD.replace('compose_project = "p"', f'compose_project = "{project}"')
    assert accepted(tmp_path, text).compose_project == project


# -- Log patterns, compiled at load as the probe compiles them ------------------------


@pytest.mark.parametrize(
    ("table_body", "expected"),
    [
        ("patterns = []", "'logs.patterns' is empty, which would mark every log line as bad"),
        ('patterns = ["error", ""]', "'logs.patterns' holds an empty pattern"),
        ('ignore = [""]', "'logs.ignore' holds an empty pattern"),
        (f'patterns = ["{"a" * 501}"]', "is longer than 500 characters"),
        (f'ignore = ["{"a" * 501}"]', "is longer than 500 characters"),
        (
            f"patterns = {json.dumps([f'p{i}' for i in range(101)])}",
            "'logs.patterns' has 101 entries; at most 100",
        ),
        (
            f"ignore = {json.dumps([f'p{i}' for i in range(101)])}",
            "'logs.ignore' has 101 entries; at most 100",
        ),
        ('patterns = ["(?z)x"]', "invalid regex '(?z)x' in 'logs.patterns': unknown extension"),
        ('patterns = ["a(?i)b"]', "invalid regex 'a(?i)b' in 'logs.patterns': global flags"),
        (
            'patterns = ["(?i)x"]',
            "invalid regex '(?i)x' in 'logs.patterns' as the log probe uses it",
        ),
        ('ignore = ["a(?i)b"]', "invalid regex 'a(?i)b' in 'logs.ignore': global flags"),
        ('patterns = ["x)|(y"]', "invalid regex 'x)|(y' in 'logs.patterns'"),
        ('patterns = ["a*"]', "pattern 'a*' matches the empty string, so it would mark every"),
        ('patterns = ["err|"]', "pattern 'err|' matches the empty string"),
        ('ignore = [".*"]', "pattern '.*' matches the empty string anywhere, so it would hide"),
        ('ignore = ["x?"]', "pattern 'x?' matches the empty string anywhere"),
        (
            'patterns = ["(?P<x>a)", "(?P<x>b)"]',
            "'logs.patterns' do not compile together as one regex: redefinition of group name",
        ),
    ],
    ids=[
        "empty-list",
        "empty-pattern",
        "empty-ignore",
        "long-pattern",
        "long-ignore",
        "many-patterns",
        "many-ignore",
        "unknown-flag",
        "flag-mid-pattern",
        "flag-in-combined",
        "flag-mid-ignore",
        "breaks-out",
        "matches-empty",
        "empty-alternative",
        "ignores-all",
        "ignores-all-optional",
        "group-twice",
    ],
)
def test_log_patterns_the_probe_cannot_use_are_refused_at_load(
    table_body: str, expected: str, tmp_path: Path
) -> None:
    message = rejected(tmp_path, with_table("logs", table_body))
    assert expected in message, message
    assert "a" * 65 not in message


@pytest.mark.parametrize(
    "patterns",
    [["error"], ["(?:5\\d\\d) from upstream", "OOM"], ["a" * 500], [f"p{i}" for i in range(100)]],
    ids=["word", "regexes", "longest", "most"],
)
def test_patterns_within_the_limits_load(patterns: list[str], tmp_path: Path) -> None:
    ignore = ["^$", "healthcheck"]
    body = f"patterns = {json.dumps(patterns)}\nignore = {json.dumps(ignore)}"
    rules = accepted(tmp_path, with_table("logs", body)).logs
    assert rules.patterns == tuple(patterns) and rules.ignore == tuple(ignore)


# -- Gaps and odd keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    "gap",
    ["Net-Ping", "net ping", "1net", "_net", "net;id", "n" * 65, ""],
    ids=["case", "space", "digit-first", "underscore-first", "shell", "long", "empty"],
)
def test_a_gap_must_be_shaped_like_a_check_name(gap: str, tmp_path: Path) -> None:
    message = rejected(tmp_path, with_table("services.*", f"gaps = {json.dumps([gap])}"))
    assert message.startswith(f"'services.api.gaps' entry {gap[:64]!r}"), message
    assert message.endswith(
        "is not a check name (lowercase letters, digits, '_', starting with a letter; "
        "at most 64 characters)"
    )


def test_a_gap_of_64_characters_loads(tmp_path: Path) -> None:
    gap = "g" * 64
    stack = accepted(tmp_path, with_table("services.*", f'gaps = ["{gap}", "net_ping"]'))
    assert stack.services["api"].gaps == (gap, "net_ping")


def test_keys_and_names_quoted_in_errors_stay_on_one_line(tmp_path: Path) -> None:
    message = rejected(tmp_path, GOOD.replace('name = "s"', 'name = "s"\n"a\\nb\\u001b[2J" = 1'))
    assert message.startswith("unknown key 'stack.a\\nb\\x1b[2J'"), message
    message = rejected(tmp_path, GOOD.replace('["postgres"]', '["post\\ngres"]'))
    assert message == "'services.api.depends_on' names unknown service 'post\\ngres'"
    long_key = "k" * 10_000
    message = rejected(tmp_path, GOOD + f"\n[{long_key}]\n")
    assert message.startswith(f"unknown table '{'k' * 64}...'") and len(message) < 200
    message = rejected(tmp_path, GOOD.replace('name = "s"', f'name = "s"\n{long_key} = 1'))
    assert message.startswith(f"unknown key 'stack.{'k' * 64}...'") and len(message) < 200


@pytest.mark.parametrize(
    "patterns",
    [["x{100000}"], ["(?:x{700}){700}"], ["a{6000}", "b{6000}"]],
    ids=["one-large-count", "nested-counts", "together"],
)
def test_counted_repetition_the_log_probe_refuses_is_refused_at_load(
    patterns: list[str], tmp_path: Path
) -> None:
    # The log probe's regex engine expands counted repetition when it compiles,
    # holding the interpreter for seconds: such a pattern must fail here, named.
    path = tmp_path / "stack.toml"
    listed = ", ".join(f'"{p}"' for p in patterns)
    path.write_text(
        f'[stack]\nname = "s"\ncompose_project = "s"\n[services.db]\n[logs]\npatterns = [{listed}]\n'
    )
    with pytest.raises(StackFileError, match="repeats too much") as caught:
        load_stack(path)
    assert "\n" not in str(caught.value)
