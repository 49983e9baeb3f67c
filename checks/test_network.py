"""Runbook Step 4: from inside each service, can it find and reach what it depends on?"""

import pytest

from stackcheck import expect
from stackcheck.probes.facts import NetFacts


def _verdict(net: NetFacts, step: str, outcome: str, what: str) -> None:
    expect(net.error is None, net.error or "")
    if outcome == "unavailable":
        pytest.skip(f"{net.source}: {net.detail.get(step, 'tool missing')}")
    detail = net.detail.get(step, "")
    expect(outcome == "ok", f"{what} from inside {net.source}: {detail or outcome}".rstrip(": "))


def test_net_resolve(net: NetFacts) -> None:
    _verdict(net, "resolve", net.resolve, f"name '{net.target}' does not resolve")


def test_net_ping(net: NetFacts) -> None:
    _verdict(net, "ping", net.ping, f"{net.target} does not answer ping")


def test_net_port(net: NetFacts) -> None:
    _verdict(net, "port", net.port_open, f"{net.target}:{net.port} does not accept TCP")
