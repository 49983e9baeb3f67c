"""What changed since the last healthy run: the diffing, the file, the key, every output.

The diff is pure logic on two observations; the end-to-end cases run the real
checks and reporter on fabricated facts (reportbench), twice: a healthy run
that saves the baseline, then a run with something changed.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from reportbench import DB_STOPPED, PASSWORD, CheckRun, remediation

from stackcheck.model import CheckRef
from stackcheck.probes.docker_probe import ENV_VARS_MAX, env_digests, key_id
from stackcheck.probes.facts import ContainerFacts, DataFsFacts, PgFacts, StackFacts
from stackcheck.report import baseline
from stackcheck.report.baseline import Baseline, Change, Unusable, diff, merge, observe

pytest_plugins = ("pytester",)

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
SUMMARY_SCHEMA: dict[str, Any] = json.loads((DOCS / "summary.schema.json").read_text())
NOW = datetime(2026, 11, 29, 1, 0, 0, tzinfo=UTC)
SAVED = NOW - timedelta(minutes=30)
MiB = 2**20


def container(**change: Any) -> dict[str, Any]:
    found = {
        "id": "a" * 64,
        "name": "tb-backend-1",
        "state": "running",
        "image": "app:1.4.2",
        "image_id": "sha256:" + "1" * 64,
        "created_at": "2026-11-28T20:00:00.123456789Z",
        "started_at": "2026-11-28T20:00:01.5Z",
        "finished_at": "0001-01-01T00:00:00Z",
        "restart_count": 0,
        "config_hash": "c1",
        "mem_limit": 256 * MiB,
        "cpu_limit": None,
        "mounts": [],
        "env_key_id": "k1",
        "env": {"": "w1", "PATH": "p1", "DATABASE_URL": "d1", "MODE": "m1"},
    }
    return {**found, **change}


def old(**services: dict[str, Any]) -> Baseline:
    return Baseline(SAVED, services)


def lines(changes: list[Change]) -> list[str]:
    return [c.line(NOW) for c in changes]


# -- The diff -------------------------------------------------------------------------


def test_nothing_changed_is_no_change() -> None:
    seen = {"backend": {"container": container()}}
    assert diff(old(backend={"container": container()}), seen) == []


def test_a_new_image_dates_from_the_new_container() -> None:
    new = container(
        id="b" * 64,
        image="app:1.5.0",
        image_id="sha256:" + "2" * 64,
        created_at="2026-11-29T00:48:00Z",
        started_at="2026-11-29T00:48:01Z",
        config_hash="c2",
    )
    changes = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert lines(changes) == ["backend image changed 12 min ago: app:1.4.2 → app:1.5.0"]
    assert changes[0].at == datetime(2026, 11, 29, 0, 48, tzinfo=UTC)


def test_the_same_tag_on_another_image_shows_the_ids() -> None:
    new = container(id="b" * 64, image_id="sha256:" + "2" * 64, created_at="2026-11-29T00:59:30Z")
    changes = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert lines(changes) == [
        "backend image changed 30 s ago: app:1.4.2 (111111111111) → app:1.4.2 (222222222222)"
    ]


def test_a_restart_in_place_says_when_and_how_often() -> None:
    db = container(name="tb-db-1", restart_count=2, started_at="2026-11-29T00:57:00Z")
    changes = diff(old(db={"container": container(name="tb-db-1")}), {"db": {"container": db}})
    assert lines(changes) == ["db restarted 3 min ago: 2 times"]
    # `docker restart` moves the start time but not docker's restart count.
    db = container(name="tb-db-1", started_at="2026-11-29T00:57:00Z")
    changes = diff(old(db={"container": container(name="tb-db-1")}), {"db": {"container": db}})
    assert lines(changes) == ["db restarted 3 min ago"]


def test_a_stopped_container_says_when_it_stopped() -> None:
    now = container(state="exited", finished_at="2026-11-29T00:55:00Z")
    changes = diff(old(db={"container": container()}), {"db": {"container": now}})
    assert lines(changes) == ["db stopped (now exited) 5 min ago"]


def test_limits_changed_in_place_have_no_known_time() -> None:
    new = container(mem_limit=128 * MiB, cpu_limit=0.5)
    changes = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert lines(changes) == [
        "backend memory limit changed: 256 MiB → 128 MiB",
        "backend CPU limit changed: unlimited → 0.5 cores",
    ]
    assert all(c.at is None for c in changes)
    new = container(mem_limit=0)
    (change,) = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert change.detail == "256 MiB → unlimited"


def test_the_environment_names_variables_never_values() -> None:
    env = {"": "w2", "PATH": "p1", "DATABASE_URL": "d2", "NEW": "n1"}
    new = container(id="b" * 64, env=env, created_at="2026-11-29T00:40:00Z")
    (change,) = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert change.line(NOW) == (
        "backend environment changed 20 min ago: DATABASE_URL changed; NEW added; MODE removed "
        "(values not shown)"
    )


def test_environments_under_different_keys_are_not_compared() -> None:
    new = container(env={"": "x", "PATH": "x"}, env_key_id="k2")
    assert diff(old(backend={"container": container()}), {"backend": {"container": new}}) == []
    # Nor when either side took no digest (no key file).
    new = container(env={}, env_key_id="")
    assert diff(old(backend={"container": container()}), {"backend": {"container": new}}) == []


def test_many_variables_are_counted_after_the_first_names() -> None:
    before = {"": "w1", **{f"V{i:02}": "a" for i in range(20)}}
    after = {"": "w2", **{f"V{i:02}": "b" for i in range(20)}}
    new = container(env=after)
    (change,) = diff(
        old(backend={"container": container(env=before)}), {"backend": {"container": new}}
    )
    assert change.detail.startswith("V00, V01, V02, V03, V04, V05, V06, V07 and 12 more changed")


def test_a_recreation_alone_and_a_config_change_alone() -> None:
    new = container(id="b" * 64, created_at="2026-11-29T00:50:00Z")
    changes = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert lines(changes) == ["backend recreated (same image and configuration) 10 min ago"]
    new = container(id="b" * 64, created_at="2026-11-29T00:50:00Z", config_hash="c9")
    changes = diff(old(backend={"container": container()}), {"backend": {"container": new}})
    assert lines(changes) == ["backend recreated from a changed compose configuration 10 min ago"]


def test_mounts_added_and_removed() -> None:
    was = container(mounts=["volume data -> /var/lib/postgresql/data"])
    now = container(mounts=["bind /srv/pg -> /var/lib/postgresql/data"])
    (change,) = diff(old(db={"container": was}), {"db": {"container": now}})
    assert change.detail == (
        "+ bind /srv/pg -> /var/lib/postgresql/data; - volume data -> /var/lib/postgresql/data"
    )


def test_postgres_settings_date_from_the_restart_that_applied_them() -> None:
    was = {"container": container(), "pg": {"max_connections": 100, "server_version": "15.8"}}
    now = {
        "container": container(started_at="2026-11-29T00:57:00Z"),
        "pg": {"max_connections": 30, "server_version": "16.4"},
    }
    assert lines(diff(old(db=was), {"db": now})) == [
        "db restarted 3 min ago",
        "db PostgreSQL max_connections changed 3 min ago: 100 → 30",
        "db PostgreSQL server version changed 3 min ago: 15.8 → 16.4",
    ]


def test_free_space_only_when_it_moved_by_a_twentieth_of_the_filesystem() -> None:
    def fs(avail: int, size: int = 100_000) -> dict[str, Any]:
        return {"datafs": {"path": "/d", "size_kb": size, "avail_kb": avail}}

    assert diff(old(db=fs(60_000)), {"db": fs(56_000)}) == []
    assert lines(diff(old(db=fs(60_000)), {"db": fs(3_000)})) == [
        "db data filesystem free space fell: 58.6 MiB → 2.9 MiB free of 97.7 MiB"
    ]
    assert lines(diff(old(db=fs(60_000)), {"db": fs(60_000, 200_000)})) == [
        "db data filesystem size changed: 97.7 MiB → 195.3 MiB"
    ]


def test_services_gone_new_and_unseen() -> None:
    before = old(backend={"container": container()}, db={"container": container(name="db-1")})
    # db not observed at all (a partial run): not compared, not "gone".
    assert diff(before, {"backend": {"container": container()}}) == []
    # Its container not seen (the engine's probe blind): not compared either.
    assert diff(before, {"backend": {"container": container()}, "db": {"pg": {}}}) == []
    # Seen to have no container: gone.
    seen = {"backend": {"container": container()}, "db": {"container_missing": True}}
    assert lines(diff(before, seen)) == ["db container gone: was db-1"]
    cache = container(name="tb-cache-1", created_at="2026-11-29T00:59:00Z")
    seen = {"backend": {"container": container()}, "cache": {"container": cache}}
    assert lines(diff(old(backend={"container": container()}), seen)) == [
        "cache is new 1 min ago: tb-cache-1"
    ]


def test_newest_first_and_undated_last() -> None:
    was = {"container": container(), "pg": {"max_connections": 100, "server_version": "15"}}
    backend = container(id="b" * 64, image="app:2", image_id="x", created_at="2026-11-29T00:30:00Z")
    db = {
        "container": container(mem_limit=1),
        "pg": {"max_connections": 50, "server_version": "15"},
    }
    db["container"]["started_at"] = "2026-11-29T00:55:00Z"
    found = diff(
        old(backend={"container": container()}, db=was),
        {"backend": {"container": backend}, "db": db},
    )
    assert [c.what for c in found] == [
        "restarted",
        "PostgreSQL max_connections changed",
        "image changed",
        "memory limit changed",
    ]


def test_hostile_names_reach_no_line_with_a_control_character() -> None:
    new = container(image="app:\x1b[2J1.5\n", image_id="y", id="b" * 64)
    (change,) = diff(old(evil={"container": container()}), {"evil\x07": {"container": new}})
    text = change.line(NOW)
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T00:48:00.123456789Z", datetime(2026, 11, 29, 0, 48, 0, 123456, tzinfo=UTC)),
        ("2026-11-29T00:48:00+01:00", datetime(2026, 11, 28, 23, 48, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("2026-11-29T00:48:00", None),  # no zone: not a time we can compare
        ("yesterday", None),
        (None, None),
        (17, None),
    ],
)
def test_docker_times(value: Any, expected: datetime | None) -> None:
    assert baseline.docker_time(value) == expected


def test_how_long_ago() -> None:
    assert baseline.ago(NOW + timedelta(seconds=5), NOW) == "just now"  # clock skew
    assert baseline.ago(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert baseline.ago(NOW - timedelta(minutes=89), NOW) == "89 min ago"
    assert baseline.ago(NOW - timedelta(hours=5), NOW) == "5 h ago"
    assert baseline.ago(NOW - timedelta(days=3), NOW) == "3 d ago"


# -- The environment's digests --------------------------------------------------------


def test_env_digests_are_keyed_and_hold_no_value() -> None:
    env = ["DATABASE_URL=postgresql://u:hunter2@db/x", "MODE=a", "PATH=/bin"]
    one, two = env_digests(env, b"k" * 32), env_digests(env, b"j" * 32)
    assert set(one) == {"", "DATABASE_URL", "MODE", "PATH"}
    assert one != two and key_id(b"k" * 32) != key_id(b"j" * 32)
    assert "hunter2" not in json.dumps(one) and "/bin" not in json.dumps(one)
    changed = env_digests(["DATABASE_URL=postgresql://u:hunter3@db/x", *env[1:]], b"k" * 32)
    assert {k for k in one if one[k] != changed[k]} == {"", "DATABASE_URL"}
    # Order does not matter; junk entries are ignored.
    assert env_digests([*reversed(env), None, 5], b"k" * 32) == one


def test_env_digests_are_bounded() -> None:
    env = [f"V{i}=x" for i in range(1000)] + ["N" * 10_000 + "=v"]
    found = env_digests(env, b"k" * 32)
    assert len(found) == ENV_VARS_MAX + 1
    assert all(len(name) <= 128 for name in found)


# -- The key file ---------------------------------------------------------------------


def test_the_key_is_created_once_private_and_then_read(tmp_path: Path) -> None:
    key, problem = baseline.env_key(tmp_path / "reports")
    assert key is not None and len(key) == 32 and problem is None
    path = tmp_path / "reports" / baseline.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert baseline.env_key(tmp_path / "reports") == (key, None)
    assert [p.name for p in (tmp_path / "reports").iterdir()] == [baseline.KEY_FILE]


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: (p.write_text("abc"), p.chmod(0o600)), "not a key"),
        (lambda p: (p.write_text("zz" * 32), p.chmod(0o600)), "non-hexadecimal"),
        (lambda p: (p.write_text("ab" * 32), p.chmod(0o644)), "chmod 600"),
        (lambda p: p.symlink_to("/etc/passwd"), "cannot open it"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.mkdir(), "not a regular file"),
    ],
)
def test_an_unusable_key_means_no_digests_and_says_why(tmp_path: Path, make: Any, why: str) -> None:
    make(tmp_path / baseline.KEY_FILE)
    key, problem = baseline.env_key(tmp_path)
    assert key is None and problem is not None and why in problem


def test_an_unwritable_reports_directory_gives_no_key(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    key, problem = baseline.env_key(tmp_path / "file" / "reports")
    assert key is None and problem is not None


# -- What a report carries ------------------------------------------------------------


def test_observe_keeps_no_secret_and_merge_unites_the_reports() -> None:
    facts = StackFacts()
    facts.containers["db"] = ContainerFacts(
        "db",
        found=True,
        id="d" * 64,
        name=f"tb-db-{PASSWORD}",
        image="postgres:15",
        mounts=[{"Type": "bind", "Name": "", "Source": "/srv", "Destination": "/d"}],
        env_digests={"": "00", "POSTGRES_PASSWORD": "11"},
        env_key_id="k1",
    )
    facts.pg["db"] = PgFacts("db", max_connections=30, server_version="15.8")
    facts.datafs["db"] = DataFsFacts("db", path="/d", size_kb=10, avail_kb=5)
    seen = observe(CheckRef("tb", "pg_ready", "db"), facts, [PASSWORD])
    assert PASSWORD not in json.dumps(seen)
    assert seen["db"]["container"]["mounts"] == ["bind /srv -> /d"]
    assert seen["db"]["container"]["env"] == {"": "00", "POSTGRES_PASSWORD": "11"}
    assert seen["db"]["pg"] == {"max_connections": 30, "server_version": "15.8"}
    assert observe(CheckRef("tb", "x", "backend"), facts, []) == {}
    # Blind facts are not observations: a change must never be a blind spot.
    facts.containers["db"].blind = "engine unreachable"
    assert set(observe(CheckRef("tb", "pg_ready", "db"), facts, [])["db"]) == {"pg", "datafs"}
    facts.containers["db"] = ContainerFacts("db", found=False)
    assert observe(CheckRef("tb", "pg_ready", "db"), facts, [])["db"]["container_missing"]
    merged = merge([{"observed": seen}, {"observed": {"backend": {"nonsense": 1}}}, {}, None])
    assert set(merged) == {"db"}


# -- The file, hostile or broken ------------------------------------------------------


def _save(path: Path, services: dict[str, Any], saved: datetime = SAVED) -> None:
    baseline.save(path, Baseline(saved, services))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    services = {"backend": {"container": container()}}
    _save(tmp_path / "b.json", services)
    found = baseline.load(tmp_path / "b.json", NOW)
    assert found == Baseline(SAVED, services)
    assert baseline.load(tmp_path / "none.json", NOW) is None


GOOD = {"version": 1, "saved_at": SAVED.isoformat(), "services": {}}
UNUSABLE: dict[str, tuple[Any, str]] = {
    "not JSON": (b"{nope", "not valid JSON"),
    "nested deep": (b"[" * 100_000, "not valid JSON"),
    "a list": (b"[]", "not a version 1 baseline"),
    "another version": ({**GOOD, "version": 2}, "not a version 1 baseline"),
    "no zone": ({**GOOD, "saved_at": "2026-11-29T00:00:00"}, "no time zone"),
    "a number for a time": ({**GOOD, "saved_at": 5}, "not an ISO 8601 time"),
    "from the future": ({**GOOD, "saved_at": (NOW + timedelta(hours=1)).isoformat()}, "future"),
    "services a list": ({**GOOD, "services": []}, "not an object of services"),
    "a wrong field": (
        {**GOOD, "services": {"db": {"container": container(restart_count="2")}}},
        "not of the expected shape",
    ),
    "a bool for a count": (
        {**GOOD, "services": {"db": {"pg": {"max_connections": True, "server_version": ""}}}},
        "not of the expected shape",
    ),
    "an unknown part": ({**GOOD, "services": {"db": {"shell": "rm -rf /"}}}, "expected shape"),
    "huge": ({**GOOD, "pad": "x" * (baseline.READ_MAX + 1)}, "larger than"),
    "a link": (Path("/etc/hostname"), "cannot open it"),
    "a FIFO": (None, "not a regular file"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_an_unusable_file_is_one_warning_and_no_baseline(tmp_path: Path, case: str) -> None:
    content, why = UNUSABLE[case]
    path = tmp_path / "baseline-tb.json"
    if isinstance(content, Path):
        path.symlink_to(content)
    elif content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(Unusable, match=why):
        baseline.load(path, NOW)
    warnings: list[str] = []
    assert baseline.read(path, NOW, warnings.append) is None
    assert len(warnings) == 1 and why in warnings[0] and "\n" not in warnings[0]


# -- End to end on fabricated facts ---------------------------------------------------

CHANGED_BACKEND = {
    "id": "fedcba9876543210fedc",
    "image": "tb-backend:1.1",
    "image_id": "sha256:" + "2" * 64,
    "created_at": "2026-11-28T02:30:00Z",
    "mem_limit": 128 * MiB,
    "env_digests": {"": "9" * 16, "PATH": "1" * 16, "FEATURE": "8" * 16},
}


def test_a_healthy_run_saves_the_baseline_and_a_failing_one_shows_what_changed(
    checkrun: CheckRun,
) -> None:
    first = checkrun.run()
    assert first.ret == 0
    path = checkrun.reports / "baseline-testbed.json"
    saved = json.loads(path.read_text())
    assert set(saved["services"]) == {"backend", "db"}
    assert saved["services"]["db"]["pg"] == {"max_connections": 30, "server_version": "15.8"}
    assert PASSWORD not in path.read_text()
    # A healthy run with nothing changed says nothing about it.
    assert not any("WHAT CHANGED" in line for line in remediation(first))

    checkrun.scenario({**DB_STOPPED, "container:backend": CHANGED_BACKEND})
    second = checkrun.run()
    assert second.ret == 1
    lines = remediation(second)
    start = lines.index(next(line for line in lines if line.startswith("WHAT CHANGED")))
    assert start < lines.index(next(line for line in lines if line.startswith("ROOT CAUSE")))
    end = lines.index("", start)
    shown = {line.strip().split(" ")[1]: line.strip() for line in lines[start + 1 : end]}
    # Newest first: db stopped at 02:34:45, the new backend was created at 02:30.
    assert [line.strip().split(" ", 1)[0] for line in lines[start + 1 : end]] == [
        "db",
        *["backend"] * 3,
    ]
    assert shown["stopped"].startswith("db stopped (now exited) ")
    assert shown["image"].startswith("backend image changed ")
    assert shown["image"].endswith(" ago: tb-backend:1.0 → tb-backend:1.1")
    assert shown["memory"].startswith("backend memory limit changed ")
    assert shown["memory"].endswith(" ago: 256 MiB → 128 MiB")
    assert shown["environment"].startswith("backend environment changed ")
    assert shown["environment"].endswith(" ago: FEATURE added (values not shown)")

    summary = checkrun.summary()
    jsonschema.validate(summary, SUMMARY_SCHEMA)
    whats = [c["what"] for c in summary["changes"]]
    assert {"image changed", "memory limit changed", "environment changed"} <= set(whats)
    assert summary["stacks"][0]["baseline_at"] == saved["saved_at"]
    note = next(checkrun.reports.glob("incident-testbed-*.md")).read_text()
    assert note.index("## What changed since the last healthy run") < note.index("## Root causes")
    assert "tb-backend:1.0 → tb-backend:1.1" in note
    # A failing run keeps the baseline of the last healthy one.
    assert json.loads(path.read_text()) == saved


def test_an_unhealthy_run_without_a_baseline_says_so(checkrun: CheckRun) -> None:
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    assert result.ret == 1
    assert any(
        "What changed: unknown, no baseline of a healthy run" in line
        for line in remediation(result)
    )
    assert not (checkrun.reports / "baseline-testbed.json").exists()
    assert (
        checkrun.summary()["changes"] == []
        and checkrun.summary()["stacks"][0]["baseline_at"] is None
    )


def test_a_partial_healthy_run_saves_no_baseline(checkrun: CheckRun) -> None:
    assert checkrun.run("-k", "container").ret == 0
    assert not (checkrun.reports / "baseline-testbed.json").exists()


def test_a_broken_baseline_costs_one_line_never_the_report(checkrun: CheckRun) -> None:
    checkrun.reports.mkdir()
    (checkrun.reports / "baseline-testbed.json").write_text('{"version": 1, "saved_at": 3')
    checkrun.scenario(DB_STOPPED)
    result = checkrun.run()
    assert result.ret == 1
    text = result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    warned = [line for line in result.outlines if "baseline" in line and "unusable" in line]
    assert len(warned) == 1 and "not valid JSON" in warned[0]
    assert any(line.startswith("ROOT CAUSE") for line in remediation(result))
    # The next healthy run replaces it.
    checkrun.scenario({})
    assert checkrun.run().ret == 0
    assert json.loads((checkrun.reports / "baseline-testbed.json").read_text())["version"] == 1
