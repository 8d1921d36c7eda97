"""The answer kinds of the contract, asked over the wire on a non-primary address per family.

Unit tests cover the lookup logic in depth; here the point is that each kind of answer survives
the real sockets, from the address asked, for both clients.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from . import netns
from .checks import assert_answer, assert_authoritative, assert_from, assert_rcode
from .clients import Client, Target
from .zonedata import (
    BELOW_DELEGATION,
    CNAME,
    DELEGATION,
    DELEGATION_NS,
    GLUE,
    GLUE_A,
    MISSING,
    OUTSIDE,
    SOA_NAME,
    WWW,
    WWW_A,
)

TARGETS = [
    pytest.param((netns.V4_ALIASES[0], netns.V4_PRIMARY), id="v4-alias-127.0.0.53"),
    pytest.param((netns.V6_SECOND, netns.V6_FIRST), id="v6-second-fd53::2"),
]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, on_server: Callable[..., Target]) -> Target:
    """An IPv4 alias and the second IPv6 address."""
    address, source = request.param
    return on_server(address, source)


def test_cname_is_followed(client: Client, target: Target) -> None:
    """ftp -> www: the CNAME and www's A record, authoritative."""
    reply = client.ask(target, CNAME, "A")
    assert_authoritative(reply, target, WWW, "A", WWW_A)
    assert_answer(reply, CNAME, "CNAME", {WWW})


def test_nxdomain_has_soa(client: Client, target: Target) -> None:
    """A name that does not exist: NXDOMAIN, AA, the zone's SOA in authority."""
    reply = client.ask(target, MISSING, "A")
    assert_from(reply, target)
    assert_rcode(reply, "NXDOMAIN", aa=True)
    assert not reply.answer, reply.text
    assert reply.rdatas("authority", SOA_NAME, "SOA"), reply.text


def test_nodata_has_soa(client: Client, target: Target) -> None:
    """A name without the asked type: NOERROR, empty answer, AA, SOA in authority."""
    reply = client.ask(target, WWW, "MX")
    assert_from(reply, target)
    assert_rcode(reply, "NOERROR", aa=True)
    assert not reply.answer, reply.text
    assert reply.rdatas("authority", SOA_NAME, "SOA"), reply.text


def test_referral_below_delegation(client: Client, target: Target) -> None:
    """Below lab: a referral, NS in authority, glue in additional, AA clear."""
    reply = client.ask(target, BELOW_DELEGATION, "A")
    assert_from(reply, target)
    assert_rcode(reply, "NOERROR", aa=False)
    assert not reply.answer, reply.text
    assert reply.rdatas("authority", DELEGATION, "NS") == DELEGATION_NS, reply.text
    assert reply.rdatas("additional", GLUE, "A") == GLUE_A, reply.text


def test_outside_our_zones_is_refused(client: Client, target: Target) -> None:
    """A name in no hosted zone: REFUSED, without AA."""
    reply = client.ask(target, OUTSIDE, "A")
    assert_from(reply, target)
    assert_rcode(reply, "REFUSED", aa=False)
