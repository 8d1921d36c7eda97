"""Case 7: the UDP size limit, TC=1 and the TCP retry; the question's letter case comes back.

The zone's big.example.com A RRset (50 records, about 850 bytes) does not fit 512 bytes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import pytest

from . import netns
from .checks import assert_authoritative, assert_from, assert_rcode
from .clients import Client, Target, collect_datagrams, make_query, open_udp
from .netns import run_in_netns
from .zonedata import BIG, BIG_A, WWW, WWW_A

TARGETS = [
    pytest.param(netns.V4_ALIASES[0], netns.V4_PRIMARY, id="v4-alias-127.0.0.53"),
    pytest.param(netns.V6_SECOND, netns.V6_FIRST, id="v6-second-fd53::2"),
]


@pytest.mark.parametrize(
    "payload", [pytest.param(512, id="edns-512"), pytest.param(None, id="no-edns")]
)
@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_udp_answer_too_big_is_truncated(
    client: Client,
    on_server: Callable[..., Target],
    address: str,
    source: str,
    payload: int | None,
) -> None:
    """Over a 512-byte limit the UDP answer has TC=1 (and is still authoritative)."""
    target = on_server(address, source)
    reply = client.ask(target, BIG, "A", payload=payload)
    assert_from(reply, target)
    assert_rcode(reply, "NOERROR", aa=True)
    assert "tc" in reply.flags, f"expected TC=1 with payload {payload}:\n{reply.text}"


@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_udp_answer_that_fits_is_complete(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """With EDNS 1232 the same RRset fits: whole, no TC (truncation must not be blanket)."""
    target = on_server(address, source)
    reply = client.ask(target, BIG, "A", payload=1232)
    assert_authoritative(reply, target, BIG, "A", BIG_A)


@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_tcp_returns_the_full_rrset(
    client: Client, on_server: Callable[..., Target], address: str, source: str
) -> None:
    """The question that was truncated over UDP gets all 50 records over TCP."""
    target = on_server(address, source)
    reply = client.ask(target, BIG, "A", payload=512, tcp=True)
    assert_authoritative(reply, target, BIG, "A", BIG_A, transport="TCP")


@pytest.mark.parametrize(
    "payload", [pytest.param(512, id="edns-512"), pytest.param(None, id="no-edns")]
)
@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_truncated_datagram_fits_the_limit(
    on_server: Callable[..., Target], address: str, source: str, payload: int | None
) -> None:
    """Raw check of the datagram itself: at most 512 bytes, TC bit set, from the address asked."""
    target = on_server(address, source)
    query = make_query(BIG, "A", payload).to_wire()

    def exchange() -> list[tuple[bytes, str]]:
        sock, where = open_udp(target)
        with sock:
            sock.sendto(query, where)
            return collect_datagrams(sock, time.monotonic() + 2.0, first_only=True)

    received = run_in_netns(target.netns, exchange)
    assert received, f"no reply from {target}"
    datagram, source_address = received[0]
    assert source_address == target.host
    assert len(datagram) <= 512, f"{len(datagram)}-byte reply to a 512-byte client"
    (flags,) = struct.unpack("!H", datagram[2:4])
    assert flags & 0x0200, "TC bit not set"


@pytest.mark.parametrize("tcp", [pytest.param(False, id="udp"), pytest.param(True, id="tcp")])
def test_question_case_is_preserved(
    client: Client, on_server: Callable[..., Target], tcp: bool
) -> None:
    """The question comes back in the letter case sent, even right after other spellings.

    The same name in three spellings, in a row, so that an answer cache keyed on the
    lower-cased name must still copy each query's own case.
    """
    target = on_server(netns.V4_ALIASES[0], netns.V4_PRIMARY)
    for spelling in ("www.example.com.", "WWW.EXAMPLE.COM.", "WwW.ExAmPlE.CoM."):
        reply = client.ask(target, spelling, "A", tcp=tcp)
        transport = "TCP" if tcp else "UDP"
        assert_authoritative(reply, target, WWW, "A", WWW_A, transport=transport)
        assert reply.question == (spelling,), f"question came back as {reply.question}"
