"""Cases 1-4 and 6: every kind of local address answers, from itself, for as long as it exists.

Without pktinfo a wildcard socket replies from the address the kernel prefers for the client
(127.0.0.1, fd53::1, the decoy fe80::2), and both clients reject that reply.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import netns
from .checks import assert_alive, assert_authoritative
from .clients import Client, QueryFailed, Target
from .daemon import Daemon
from .zonedata import WWW, WWW_A, WWW_AAAA

SHORT = 1.0  # seconds: timeout for questions that must fail


@pytest.mark.parametrize(
    ("address", "source"),
    [
        pytest.param(netns.V4_PRIMARY, netns.V4_PRIMARY, id="v4-primary-127.0.0.1"),
        pytest.param(netns.V4_ALIASES[0], netns.V4_PRIMARY, id="v4-alias-127.0.0.53"),
        pytest.param(netns.V4_ALIASES[1], netns.V4_PRIMARY, id="v4-alias-127.0.1.1"),
    ],
)
def test_ipv4_primary_and_aliases(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """Case 1: asked from 127.0.0.1, each IPv4 address answers from itself."""
    target = on_server(address, source)
    assert_authoritative(client.ask(target, WWW, "A"), target, WWW, "A", WWW_A)


@pytest.mark.parametrize(
    ("address", "source"),
    [
        pytest.param(netns.V6_SECOND, netns.V6_FIRST, id="v6-second-fd53::2"),
        pytest.param(netns.V6_LOOPBACK, netns.V6_LOOPBACK, id="v6-loopback-::1"),
    ],
)
def test_ipv6_addresses(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """Case 2: a second IPv6 address (asked from the first) and ::1 answer from themselves."""
    target = on_server(address, source)
    assert_authoritative(client.ask(target, WWW, "AAAA"), target, WWW, "AAAA", WWW_AAAA)


@pytest.mark.parametrize(
    ("cidr", "source"),
    [
        pytest.param("127.0.0.99/32", netns.V4_PRIMARY, id="v4-127.0.0.99"),
        pytest.param("fd53::99/64", netns.V6_FIRST, id="v6-fd53::99"),
    ],
)
def test_address_added_after_ready(
    client: Client,
    on_server: Callable[..., Target],
    topology: netns.Topology,
    cidr: str,
    source: str,
) -> None:
    """Case 3: an address configured after READY=1 is served at once, with no restart."""
    target = on_server(cidr.split("/")[0], source)
    with pytest.raises(QueryFailed):  # precondition: nothing answers there yet
        client.ask(target, WWW, "A", timeout=SHORT)
    with netns.temporary_address(topology.server, cidr):
        assert_authoritative(client.ask(target, WWW, "A"), target, WWW, "A", WWW_A)


def test_ipv6_link_local_over_veth(client: Client, link_local: Target) -> None:
    """Case 4: fe80::53%vethc from the client namespace; the scope must survive the reply."""
    reply = client.ask(link_local, WWW, "AAAA")
    assert_authoritative(reply, link_local, WWW, "AAAA", WWW_AAAA)


@pytest.mark.parametrize(
    ("cidr", "source"),
    [
        pytest.param("127.0.1.77/32", netns.V4_PRIMARY, id="v4-127.0.1.77"),
        pytest.param("fd53::77/64", netns.V6_FIRST, id="v6-fd53::77"),
    ],
)
def test_address_removed_while_running(
    client: Client,
    daemon: Daemon,
    on_server: Callable[..., Target],
    topology: netns.Topology,
    cidr: str,
    source: str,
) -> None:
    """Case 6: removing an address costs only that address; the daemon and the rest go on."""
    removed = on_server(cidr.split("/")[0], source)
    with netns.temporary_address(topology.server, cidr):
        assert_authoritative(client.ask(removed, WWW, "A"), removed, WWW, "A", WWW_A)
        netns.delete_address(topology.server, cidr)
        assert_alive(daemon)
        with pytest.raises(QueryFailed):
            client.ask(removed, WWW, "A", timeout=SHORT)
        for survivor in (
            on_server(netns.V4_ALIASES[0], netns.V4_PRIMARY),
            on_server(netns.V6_SECOND, netns.V6_FIRST),
        ):
            reply = client.ask(survivor, WWW, "A")
            assert_authoritative(reply, survivor, WWW, "A", WWW_A)
    assert_alive(daemon)
