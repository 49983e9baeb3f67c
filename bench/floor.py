"""The floor: only the probes the checks need, all at once, with the suite's client libraries.

One container inspect per service, one stats sample per running container, one
HTTP GET, one PostgreSQL connect + query, one exec per network edge. It imports
pytest too, so its wall time is the cheapest a pytest-based check could be:

    python bench/floor.py --project P --health-url URL --dsn DSN [--edge backend:db:5432]

Prints one JSON line (per-probe seconds); exit 0 when every probe answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import psycopg
import pytest  # noqa: F401  -- the floor carries pytest's import like any pytest run
import requests

NET = "getent hosts {t} && ping -c 1 -W 1 {t} && nc -z -w 1 {t} {p}"


def timed(name: str, task: Any, *args: Any) -> tuple[str, float, bool]:
    started = time.monotonic()
    try:
        task(*args)
        ok = True
    except Exception as exc:
        print(f"floor: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        ok = False
    return name, time.monotonic() - started, ok


def http_get(url: str) -> None:
    with requests.get(url, timeout=5, stream=True) as response:
        response.raise_for_status()
        next(response.iter_content(4096), b"")


def pg_query(dsn: str) -> None:
    with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()


def stats_once(api: Any, container_id: str) -> None:
    api.stats(container_id, stream=False)


def exec_edge(api: Any, container_id: str, target: str, port: str) -> None:
    exec_id = api.exec_create(container_id, ["sh", "-c", NET.format(t=target, p=port)])
    api.exec_start(exec_id)
    if api.exec_inspect(exec_id)["ExitCode"] != 0:
        raise RuntimeError(f"{target}:{port} not reachable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--health-url", required=True)
    parser.add_argument("--dsn", required=True, help="libpq DSN; password from PGPASSWORD")
    parser.add_argument("--edge", action="append", default=[], metavar="FROM:TO:PORT")
    args = parser.parse_args()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [
            pool.submit(timed, "http", http_get, args.health_url),
            pool.submit(timed, "pg", pg_query, args.dsn),
        ]
        api = docker.from_env(timeout=10).api
        listed = api.containers(
            all=True, filters={"label": f"com.docker.compose.project={args.project}"}
        )
        by_service = {c["Labels"]["com.docker.compose.service"]: c for c in listed}
        for service, found in by_service.items():
            futures.append(
                pool.submit(timed, f"inspect:{service}", api.inspect_container, found["Id"])
            )
            if found["State"] == "running":
                futures.append(pool.submit(timed, f"stats:{service}", stats_once, api, found["Id"]))
        for edge in args.edge:
            source, target, port = edge.split(":")
            futures.append(
                pool.submit(
                    timed, f"exec:{edge}", exec_edge, api, by_service[source]["Id"], target, port
                )
            )
        results = [f.result() for f in futures]
    probes = {name: round(seconds, 3) for name, seconds, _ in results}
    print(json.dumps({"probes_s": round(time.monotonic() - started, 3), "each": probes}))
    return 0 if all(ok for _, _, ok in results) and len(by_service) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
