"""Runbook Step 4: from inside each service, can it find and reach what it depends on?"""

from stackcheck import Command, Fix, Layer, Safety, check, expect
from stackcheck.probes.facts import NetFacts
from stackcheck.runbook import ALL, DIAGNOSE_NETWORK, PS_TARGET, RESOLVE_NETWORK

ALERTS = (*ALL, "database_connection_failed")


def _verdict(net: NetFacts, step: str, outcome: str, what: str) -> None:
    # A step whose tool is missing never gets here: its fixture reports "could not check".
    expect(net.error is None, net.error or "")
    detail = net.detail.get(step, "")
    expect(outcome == "ok", f"{what} from inside {net.source}: {detail or outcome}".rstrip(": "))


@check(
    title="the target's service name resolves",
    layer=Layer.NETWORK,
    rank=0,
    step=DIAGNOSE_NETWORK,
    fix=Fix(
        RESOLVE_NETWORK,
        (
            Command("$compose exec $service getent hosts $target", Safety.READ_ONLY),
            PS_TARGET,
            Command("$compose up -d --force-recreate $target", Safety.MUTATING),
        ),
    ),
    alerts=ALERTS,
    edge=True,
    target_layers=(Layer.CONTAINER,),
)
def test_net_resolve(net: NetFacts) -> None:
    _verdict(net, "resolve", net.resolve, f"name '{net.target}' does not resolve")


@check(
    title="the target answers ping",
    layer=Layer.NETWORK,
    rank=1,
    step=DIAGNOSE_NETWORK,
    fix=Fix(
        RESOLVE_NETWORK,
        (Command("$compose exec $service ping -c 3 $target", Safety.READ_ONLY), PS_TARGET),
    ),
    alerts=ALERTS,
    edge=True,
    target_layers=(Layer.CONTAINER,),
)
def test_net_ping(net: NetFacts) -> None:
    _verdict(net, "ping", net.ping, f"{net.target} does not answer ping")


@check(
    title="the target's port accepts TCP connections",
    layer=Layer.NETWORK,
    rank=2,
    step=DIAGNOSE_NETWORK,
    fix=Fix(
        RESOLVE_NETWORK,
        (
            Command("$compose exec $service nc -zv $target $target_port", Safety.READ_ONLY),
            PS_TARGET,
        ),
    ),
    alerts=ALERTS,
    edge=True,
    # The port is answered by the target's process, not just its container.
    target_layers=(Layer.CONTAINER, Layer.READINESS),
    applies=lambda source, target: target.port is not None,
)
def test_net_port(net: NetFacts) -> None:
    _verdict(net, "port", net.port_open, f"{net.target}:{net.port} does not accept TCP")
