"""A user's own check, in a directory of their own, without editing src/ or checks/.

The check and its conftest are the code blocks of docs/adding-a-check.md, read
from the document, so the guide and what runs here cannot drift apart. They run
beside a copy of the real checks, on facts fabricated by tests/unit/factbench.py,
and must take part in everything: parametrisation, could-not-check, gaps, hints
and root-cause ordering.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from reportbench import CheckRun

from stackcheck.config import load_stack

pytest_plugins = ("pytester",)

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-check.md"
PYTHON_BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def block(marker: str) -> str:
    """The one python block of the guide that contains ``marker``."""
    found = [b for b in PYTHON_BLOCKS if marker in b]
    assert len(found) == 1, f"{DOC} has {len(found)} python blocks with {marker!r}"
    return found[0]


CONFTEST = block("stackcheck.plugin.activate")
CHECK = block("def test_redis_ping")
UNIT_TEST = block("def test_loading_redis_fails")

SHOP: dict[str, Any] = {
    "name": "shop",
    "compose_project": "shop",
    "services": {
        "backend": {
            "depends_on": ["db", "cache"],
            "health_url": "http://127.0.0.1:18000/health",
            "port": 8000,
        },
        "db": {"postgres_dsn": "postgresql://app@127.0.0.1:15432/app", "port": 5432},
        "cache": {"port": 6379},
    },
}
LOADING = "LOADING Redis is loading the dataset in memory"
REDIS_DOWN: dict[str, dict[str, Any]] = {
    "command:cache:redis_ping": {"exit_code": 0, "output": LOADING + "\n"},
    "http:backend": {"status": 503, "body": '{"status":"unhealthy"}', "json_status": "unhealthy"},
}
BLIND_REASON = "redis-cli is not in shop-cache-1's image"


def with_gaps(*gaps: str) -> dict[str, Any]:
    """SHOP whose stack file declares ``gaps`` under [services.cache]."""
    cache = {**SHOP["services"]["cache"], "gaps": list(gaps)}
    return {**SHOP, "services": {**SHOP["services"], "cache": cache}}


@pytest.fixture
def shop(checkrun: CheckRun) -> CheckRun:
    """The real checks, the user's ``mychecks/``, and the shop stack, healthy."""
    mine = checkrun.path / "mychecks"
    mine.mkdir()
    (mine / "conftest.py").write_text(CONFTEST)
    (mine / "test_redis.py").write_text(CHECK)
    checkrun.scenario({}, stacks=[SHOP])
    return checkrun


def run(shop: CheckRun, *args: str) -> pytest.RunResult:
    return shop.pytester.runpytest(
        "checks", "mychecks", "-p", "fabricated", "-p", "no:cacheprovider",
        "--stack", "shop.toml", *args,
    )  # fmt: skip


def test_the_guide_s_conftest_is_the_shipped_one() -> None:
    shipped = (Path(__file__).resolve().parents[2] / "checks" / "conftest.py").read_text()
    code = [line for line in shipped.splitlines() if not line.startswith('"""')]
    assert "\n".join(code).strip() == CONFTEST.strip()


def test_own_check_runs_on_its_service_only_and_passes(shop: CheckRun) -> None:
    result = run(shop, "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["mychecks/test_redis.py::test_redis_ping[[]cache[]] PASSED*"])
    assert "test_redis_ping[backend]" not in result.stdout.str()
    assert "test_redis_ping[db]" not in result.stdout.str()
    assert shop.checks("shop")["cache:redis_ping"]["outcome"] == "passed"


def test_own_check_failing_is_a_root_cause_with_its_own_fix(shop: CheckRun) -> None:
    shop.scenario(REDIS_DOWN, stacks=[SHOP])
    result = run(shop)
    assert result.ret == 1, result.stdout.str()
    result.assert_outcomes(failed=2, passed=result.parseoutcomes()["passed"], skipped=3)
    checks = shop.checks("shop")
    redis = checks["cache:redis_ping"]
    assert redis["outcome"] == "failed"
    assert redis["role"] == "root_cause"
    assert redis["evidence"] == f"redis-cli ping in cache: exit 0: {LOADING}"
    assert redis["runbook_step"] == "docs/our-runbook.md#diagnose-redis"
    assert redis["fix_step"] == "docs/our-runbook.md#resolve-redis"
    # $compose is the container's own compose invocation (factbench's labels), $service filled.
    compose = "docker compose -p shop -f /srv/compose.yml"
    assert redis["remediation"] == [
        f"{compose} logs --tail=50 cache",
        f"{compose} restart cache",
    ]
    assert redis["safety"] == ["read-only", "mutating"]
    health = checks["backend:http_health"]
    assert health["role"] == "consequence"
    assert health["caused_by"] == "cache:redis_ping"
    assert shop.summary("shop")["root_causes"] == ["cache:redis_ping"]
    result.stdout.fnmatch_lines(
        [
            "ROOT CAUSE cache:redis_ping: Bring Redis back (docs/our-runbook.md#resolve-redis)",
            f"    [[]read-only[]]*{compose} logs --tail=50 cache",
            f"    [[]mutating[]]*{compose} restart cache",
            f"    evidence: redis-cli ping in cache: exit 0: {LOADING}",
            "*consequences (1):",
            "      <- backend:http_health: GET http://127.0.0.1:18000/health answered 503*",
        ]
    )
    result.stdout.fnmatch_lines(["*consequence of cache:redis_ping — fix that first*"])


def test_own_check_blind_is_could_not_check_not_failed(shop: CheckRun) -> None:
    shop.scenario({"command:cache:redis_ping": {"blind": BLIND_REASON}}, stacks=[SHOP])
    result = run(shop)
    assert result.ret == 6, result.stdout.str()  # status unknown
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 1 and "failed" not in outcomes
    redis = shop.checks("shop")["cache:redis_ping"]
    assert (redis["outcome"], redis["role"]) == ("error", "blind_spot")
    assert shop.summary("shop")["status"] == "unknown"
    result.stdout.fnmatch_lines(
        [
            "BLIND SPOT, could not check 1 check:",
            f"    {BLIND_REASON}",
            "    checks: cache:redis_ping",
        ]
    )


def test_declared_gap_skips_own_check(shop: CheckRun) -> None:
    shop.scenario({}, stacks=[with_gaps("redis_ping")])
    assert load_stack(shop.path / "shop.toml").services["cache"].gaps == ("redis_ping",)
    result = run(shop, "-v", "-rs")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["mychecks/test_redis.py::test_redis_ping[[]cache[]] SKIPPED*"])
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] mychecks/test_redis.py: declared gap: "
            "shop.toml says services.cache cannot support redis_ping"
        ]
    )
    redis = shop.checks("shop")["cache:redis_ping"]
    assert redis["outcome"] == "skipped"
    assert redis["evidence"].startswith("declared gap: ")


def test_gap_naming_an_unknown_check_is_a_usage_error(shop: CheckRun) -> None:
    shop.scenario({}, stacks=[with_gaps("redis_pong")])
    result = run(shop)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1, result.errlines
    assert lines[0].startswith("ERROR: shop.toml: gaps name unknown checks: redis_pong (known: ")
    assert "redis_ping" in lines[0]  # the user's own check is known


def test_gap_of_an_own_check_needs_its_directory_in_the_run(shop: CheckRun) -> None:
    # As the guide says: without mychecks/ collected, redis_ping is an unknown check.
    shop.scenario({}, stacks=[with_gaps("redis_ping")])
    result = shop.pytester.runpytest(
        "checks", "-p", "fabricated", "-p", "no:cacheprovider", "--stack", "shop.toml"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "gaps name unknown checks: redis_ping" in result.errlines[0]


def test_the_guide_s_unit_test_of_the_check_runs(shop: CheckRun) -> None:
    shop.pytester.makepyfile(test_my_redis=UNIT_TEST)
    result = shop.pytester.runpytest("test_my_redis.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
