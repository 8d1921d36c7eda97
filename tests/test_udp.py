"""The UDP path on real loopback sockets, no root needed: every 127.0.0.0/8 address is local, so
a query to 127.0.0.53 from 127.0.0.1 is the multi-address case in miniature. Clients use
connected sockets, which the kernel lets receive only from the address they connected to.

Every loopback test runs on both loops: one datagram per ``recvmsg``/``sendmsg``, and the Linux
``recvmmsg``/``sendmmsg`` batches (``test_batched.py`` has what only the batches do)."""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
from collections import Counter
from collections.abc import Callable, Iterator

import dns.message
import dns.rcode
import pytest
from support import free_port, in_pktinfo

from nameserver.answercache import AnswerCache
from nameserver.net import Handler, batched, pktinfo
from nameserver.net.listeners import Endpoint, open_endpoints
from nameserver.net.udp import UdpEndpoint
from nameserver.responder import Outcome, Responder, Transport
from nameserver.server import Server
from nameserver.zones import ZoneSet

LINUX = pktinfo.LINUX
pytestmark = pytest.mark.skipif(not socket.has_ipv6, reason="needs IPv6 on loopback")

MakeEndpoint = Callable[[socket.socket, Handler, Counter[str]], UdpEndpoint]


def one_packet(sock: socket.socket, handler: Handler, drops: Counter[str]) -> UdpEndpoint:
    return UdpEndpoint(sock, handler, LINUX, drops)


def batches(sock: socket.socket, handler: Handler, drops: Counter[str]) -> UdpEndpoint:
    return batched.BatchedUdpEndpoint(sock, handler, LINUX, drops, 64)


@pytest.fixture(
    params=[
        one_packet,
        pytest.param(
            batches,
            marks=pytest.mark.skipif(not batched.available(), reason="no recvmmsg here"),
        ),
    ],
    ids=["recvmsg", "recvmmsg"],
)
def make_endpoint(request: pytest.FixtureRequest) -> MakeEndpoint:
    return request.param


@pytest.fixture(params=[False, True], ids=["dual-stack", "ipv6-only"])
def endpoints(request: pytest.FixtureRequest) -> Iterator[list[Endpoint]]:
    opened = open_endpoints(("::",), free_port(), request.param, LINUX)
    yield [endpoint for endpoint in opened if endpoint.sock.type == socket.SOCK_DGRAM]
    for endpoint in opened:
        endpoint.sock.close()


def echo(bodies: list[bytes], peers: list[tuple] | None, local: list[bytes]) -> list[bytes | None]:
    """Replies with the local address it was told, so tests see what the handler saw; the
    network layer puts the query's first two bytes in front."""
    return [address + b":" + body for body, address in zip(bodies, local, strict=True)]


def serve_one(
    endpoints: list[Endpoint], drops: Counter[str], make_endpoint: MakeEndpoint = one_packet
) -> None:
    socks = [endpoint.sock for endpoint in endpoints]
    readable, _, _ = select.select(socks, [], [], 2.0)
    assert readable, "the query never arrived"
    for sock in readable:
        make_endpoint(sock, echo, drops).on_readable()


def client(server: str, port: int, source: str) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    sock.bind((source, 0))
    sock.connect((server, port))
    return sock


@pytest.mark.parametrize(
    ("server", "source"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.53", "127.0.0.1"),
        ("127.0.1.1", "127.0.0.1"),
        ("::1", "::1"),
    ],
)
def test_reply_leaves_from_the_queried_address(
    endpoints: list[Endpoint], make_endpoint: MakeEndpoint, server: str, source: str
) -> None:
    drops: Counter[str] = Counter()
    port = endpoints[0].sock.getsockname()[1]
    with client(server, port, source) as sock:
        sock.send(b"hello")
        serve_one(endpoints, drops, make_endpoint)
        assert sock.recv(100) == b"he" + ipaddress.ip_address(server).packed + b":llo"
    assert not drops


def test_the_largest_datagram_arrives_whole(
    endpoints: list[Endpoint], make_endpoint: MakeEndpoint
) -> None:
    """65,507 bytes, the most an IPv4 datagram carries: neither loop cuts it."""
    drops: Counter[str] = Counter()
    sizes: list[int] = []

    def measure(
        bodies: list[bytes], peers: list[tuple] | None, local: list[bytes]
    ) -> list[bytes | None]:
        sizes.extend(map(len, bodies))
        return [b"ok"] * len(bodies)

    port = endpoints[0].sock.getsockname()[1]
    with client("127.0.0.1", port, "127.0.0.1") as sock:
        sock.send(b"q" * 65507)
        readable, _, _ = select.select([e.sock for e in endpoints], [], [], 2.0)
        assert readable, "the query never arrived"
        make_endpoint(readable[0], measure, drops).on_readable()
        assert sock.recv(100) == b"qqok"
    assert sizes == [65507 - 2]  # handed over less the ID
    assert not drops


@pytest.mark.parametrize("address", ["127.0.0.53", "::1"])
def test_a_socket_bound_to_one_address_misses_no_source(
    make_endpoint: MakeEndpoint, address: str
) -> None:
    """Its replies leave from the address it is bound to, with no source address named and
    none counted as missing (the kernel reports no destination there, nor is asked to)."""
    drops: Counter[str] = Counter()
    opened = open_endpoints((address,), free_port(), False, LINUX)
    try:
        udp = [endpoint for endpoint in opened if endpoint.sock.type == socket.SOCK_DGRAM]
        source = "::1" if ":" in address else "127.0.0.1"
        with client(address, udp[0].sock.getsockname()[1], source) as sock:
            for number in range(3):
                sock.send(b"q%d" % number)
            serve_one(udp, drops, make_endpoint)
            for number in range(3):
                assert sock.recv(100) == b"q%d" % number + pktinfo.packed_address(address) + b":"
    finally:
        for endpoint in opened:
            endpoint.sock.close()
    assert not drops


def test_a_plain_send_from_the_wildcard_would_be_rejected(endpoints: list[Endpoint]) -> None:
    """The control case: without a source address the reply comes from 127.0.0.1 and the
    client never sees it. This is what the tests above would catch."""
    port = endpoints[0].sock.getsockname()[1]
    with client("127.0.0.53", port, "127.0.0.1") as sock:
        sock.send(b"hello")
        readable, _, _ = select.select([e.sock for e in endpoints], [], [], 2.0)
        data, _anc, _flags, peer = readable[0].recvmsg(100, 256)
        readable[0].sendto(data, peer)
        with pytest.raises(TimeoutError):
            sock.recv(100)


class TestDrops:
    """Datagrams that must not be answered, fed straight into :meth:`UdpEndpoint.serve`."""

    def serve(self, ancdata: pktinfo.AncData, flags: int = 0, port: int = 4444) -> Counter[str]:
        drops: Counter[str] = Counter()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            endpoint = UdpEndpoint(sock, echo, LINUX, drops)
            endpoint.serve(b"query", ancdata, flags, ("127.0.0.1", port))
        return drops

    def v4(self, spec_dst: str, addr: str) -> pktinfo.AncData:
        return [(socket.IPPROTO_IP, 8, in_pktinfo(1, spec_dst, addr))]

    def test_broadcast(self) -> None:
        assert self.serve(self.v4("127.0.0.1", "255.255.255.255")) == {"non_unicast_destination": 1}

    def test_subnet_broadcast(self) -> None:
        assert self.serve(self.v4("10.53.0.1", "10.53.0.255")) == {"non_unicast_destination": 1}

    def test_source_port_zero(self) -> None:
        assert self.serve([], port=0) == {"source_port_zero": 1}

    def test_truncated_datagram(self) -> None:
        assert self.serve([], flags=socket.MSG_TRUNC) == {"truncated": 1}

    def test_vanished_source_address_is_counted_not_raised(self) -> None:
        # 192.0.2.99 is on no interface here: the kernel refuses it as a source.
        assert self.serve(self.v4("192.0.2.99", "192.0.2.99")) == {"reply_source_gone": 1}

    def test_truncated_control_data_falls_back_to_a_plain_send(self) -> None:
        drops = self.serve(self.v4("192.0.2.99", "192.0.2.99"), flags=socket.MSG_CTRUNC)
        assert drops == {"pktinfo_missing": 1}


@pytest.mark.parametrize(
    ("udp_batch", "says"),
    [
        (1, "one datagram per recvmsg/sendmsg"),
        pytest.param(
            64,
            "up to 64 datagrams per recvmmsg/sendmmsg",
            marks=pytest.mark.skipif(not batched.available(), reason="no recvmmsg here"),
        ),
    ],
)
def test_the_server_serves_udp_with_the_loop_asked_for(
    endpoints: list[Endpoint], caplog: pytest.LogCaptureFixture, udp_batch: int, says: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="nameserver.server")
    server = Server(endpoints, Responder(ZoneSet([])), LINUX, udp_batch=udp_batch)
    server.close()
    assert caplog.text.count(says) == len(endpoints)


class FailsOnOneName(Responder):
    """A responder with a bug that only the name ``boom.`` finds."""

    def _respond_uncached(
        self, wire: bytes, key: bytes, transport: Transport, cache: AnswerCache
    ) -> Outcome | None:
        if b"\x04boom\x00" in wire:
            raise RuntimeError("a bug")
        return super()._respond_uncached(wire, key, transport, cache)


def test_a_query_that_finds_a_bug_costs_only_itself(caplog: pytest.LogCaptureFixture) -> None:
    """The batch it came in is answered again one by one: the others get their replies, and
    the failing one is logged and counted, not answered."""
    server = Server([], FailsOnOneName(ZoneSet([])), LINUX)
    handle = server._guarded(Transport.UDP)
    wires = [dns.message.make_query(name, "A").to_wire() for name in ("a.", "boom.", "b.")]
    local = [bytes([127, 0, 0, 1])] * 3
    replies = handle([wire[2:] for wire in wires], None, local)
    server.close()
    assert replies[1] is None
    answered = [wires[0][:2] + replies[0], wires[2][:2] + replies[2]]
    assert [dns.message.from_wire(reply).rcode() for reply in answered] == [
        dns.rcode.REFUSED,
        dns.rcode.REFUSED,
    ]
    assert server.drops["internal_error"] == 1
    assert caplog.text.count("internal error answering a udp query") == 1
    assert server.stats.snapshot()["responses"] == [["udp", "REFUSED", 2]]
