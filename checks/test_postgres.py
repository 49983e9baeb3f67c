"""Runbook Step 2: is the database accepting connections, with slots to spare?"""

from stackcheck import expect
from stackcheck.config import Stack
from stackcheck.probes.facts import PgFacts


def _server(pg: PgFacts) -> str:
    return f"{pg.host}:{pg.port}"


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


def test_pg_connections(pg: PgFacts, stack: Stack) -> None:
    expect(
        not pg.refused,
        f"{_server(pg)} refuses new connections for user '{pg.user}': out of connection "
        f"slots ({pg.error})",
    )
    expect(pg.error is None, f"cannot count connections on {_server(pg)}: {pg.error}")
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
