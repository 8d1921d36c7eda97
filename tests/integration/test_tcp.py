"""Case 5: TCP (RFC 7766 framing) to an IPv4 alias, the second IPv6 address and link-local."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import netns
from .checks import assert_authoritative
from .clients import Client, Target
from .zonedata import BIG, BIG_A, WWW, WWW_A, WWW_AAAA

SERVER_SIDE = [
    pytest.param(netns.V4_ALIASES[0], netns.V4_PRIMARY, id="v4-alias-127.0.0.53"),
    pytest.param(netns.V6_SECOND, netns.V6_FIRST, id="v6-second-fd53::2"),
]


@pytest.mark.parametrize(("address", "source"), SERVER_SIDE)
def test_tcp_answer(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """One question over TCP gets the authoritative answer."""
    target = on_server(address, source)
    reply = client.ask(target, WWW, "A", tcp=True)
    assert_authoritative(reply, target, WWW, "A", WWW_A, transport="TCP")


def test_tcp_link_local(client: Client, link_local: Target) -> None:
    """TCP to fe80::53%vethc from the client namespace."""
    reply = client.ask(link_local, WWW, "AAAA", tcp=True)
    assert_authoritative(reply, link_local, WWW, "AAAA", WWW_AAAA, transport="TCP")


@pytest.mark.parametrize(("address", "source"), SERVER_SIDE)
def test_several_queries_on_one_connection(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """Several queries on one connection all get their own answer (dig: +keepopen)."""
    target = on_server(address, source)
    questions = [(WWW, "A"), (WWW, "AAAA"), (BIG, "A")]
    replies = client.ask_many(target, questions)
    assert len(replies) == len(questions), [reply.text for reply in replies]
    for reply, (qname, rdtype), expected in zip(
        replies, questions, (WWW_A, WWW_AAAA, BIG_A), strict=True
    ):
        assert_authoritative(reply, target, qname, rdtype, expected, transport="TCP")
