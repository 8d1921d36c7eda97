"""The Linux recvmmsg/sendmmsg loop: its control-message encoding against golden bytes and the
socket module's own CMSG macros, and its behaviour against the one-packet loop's.

The comparison feeds both loops the same datagrams. The one-packet loop gets them through
:meth:`UdpEndpoint.serve`; the batched loop through a stand-in for ``recvmmsg`` that writes them
into its message headers as the kernel would. Replies go out through the real kernel to a real
loopback client in both cases, so what is compared is what a client receives.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import struct
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support import in6_pktinfo, in_pktinfo

from nameserver.net import batched, pktinfo
from nameserver.net.udp import UdpEndpoint

LINUX = pktinfo.LINUX
pytestmark = pytest.mark.skipif(not batched.available(), reason="no recvmmsg/sendmmsg here")
little_endian_64 = pytest.mark.skipif(
    sys.byteorder != "little" or struct.calcsize("P") != 8,
    reason="golden bytes are those of x86_64 and aarch64 Linux",
)

IN6 = in6_pktinfo("2001:db8::1", 3)
IN4 = in_pktinfo(2, "127.0.0.53", "127.0.0.53")


def cmsghdr(length: int, level: int, kind: int) -> bytes:
    return length.to_bytes(8, "little") + level.to_bytes(4, "little") + kind.to_bytes(4, "little")


# 16-byte header, the data, padding to a multiple of 8.
GOLDEN_V6 = cmsghdr(16 + 20, 41, 50) + IN6 + bytes(4)
GOLDEN_V4 = cmsghdr(16 + 12, 0, 8) + IN4 + bytes(4)


@pytest.mark.parametrize("size", range(0, 41))
def test_cmsg_sizes_agree_with_the_socket_module(size: int) -> None:
    assert batched.cmsg_len(size) == socket.CMSG_LEN(size)
    assert batched.cmsg_space(size) == socket.CMSG_SPACE(size)


@little_endian_64
def test_pack_control_golden_bytes() -> None:
    assert batched.pack_control([(41, 50, IN6)]) == GOLDEN_V6
    assert batched.pack_control([(0, 8, IN4), (41, 50, IN6)]) == GOLDEN_V4 + GOLDEN_V6
    assert batched.pack_control([]) == b""


@little_endian_64
def test_unpack_control_golden_bytes() -> None:
    assert batched.unpack_control(GOLDEN_V4 + GOLDEN_V6) == [(0, 8, IN4), (41, 50, IN6)]
    assert batched.unpack_control(b"") == []


@little_endian_64
def test_unpack_control_keeps_what_fits_of_a_cut_message() -> None:
    assert batched.unpack_control(GOLDEN_V4 + GOLDEN_V6[:30]) == [(0, 8, IN4), (41, 50, IN6[:14])]
    assert batched.unpack_control(GOLDEN_V4[:12]) == []


@little_endian_64
def test_unpack_control_stops_at_a_header_shorter_than_itself() -> None:
    assert batched.unpack_control(GOLDEN_V4 + cmsghdr(8, 41, 50) + IN6) == [(0, 8, IN4)]


def test_control_round_trips_what_pktinfo_builds() -> None:
    for address, family in [(b"\x7f\0\0\x35", socket.AF_INET), (bytes(15) + b"\1", 10)]:
        built = pktinfo.control(address, family, LINUX)
        assert batched.unpack_control(batched.pack_control(built)) == built


@dataclass
class Arrival:
    """One datagram as the kernel would hand it over."""

    data: bytes
    peer: tuple
    ancdata: pktinfo.AncData
    flags: int = 0


def sockaddr(peer: tuple) -> bytes:
    """``struct sockaddr_in`` or ``sockaddr_in6`` for a peer tuple of the socket module."""
    if len(peer) == 2:
        host, port = peer
        return struct.pack("=H", socket.AF_INET) + struct.pack(
            "!H4s8x", port, socket.inet_aton(host)
        )
    host, port, flowinfo, scope_id = peer
    address = socket.inet_pton(socket.AF_INET6, host)
    return (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack("!HI16s", port, flowinfo, address)
        + struct.pack("=I", scope_id)
    )


class Kernel:
    """Stands in for ``recvmmsg``: fills the endpoint's headers with queued arrivals."""

    def __init__(self, arrivals: list[Arrival]) -> None:
        self.queued = list(arrivals)
        self.calls = 0

    def __call__(self, fd: int, messages: int, vlen: int, flags: int, timeout: None) -> int:
        self.calls += 1
        if not self.queued:
            ctypes.set_errno(errno.EAGAIN)
            return -1
        count = min(vlen, len(self.queued))
        for slot in range(count):
            arrival = self.queued.pop(0)
            entry = batched.MMsgHdr.from_address(messages + slot * ctypes.sizeof(batched.MMsgHdr))
            header = entry.msg_hdr
            name = sockaddr(arrival.peer)
            ctypes.memmove(header.msg_name, name, len(name))
            header.msg_namelen = len(name)
            control = batched.pack_control(arrival.ancdata)
            ctypes.memmove(header.msg_control, control, len(control))
            header.msg_controllen = len(control)
            iovec = batched.IoVec.from_address(header.msg_iov)
            ctypes.memmove(iovec.iov_base, arrival.data, len(arrival.data))
            entry.msg_len = len(arrival.data)
            header.msg_flags = arrival.flags
        return count


def query(word: bytes) -> bytes:
    """A datagram carrying ``word`` after an ID of its own (its first two letters in capitals),
    which the network layer hands over without and puts back in front of the reply."""
    return word[:2].upper() + word


def echoed(address: bytes, word: bytes) -> bytes:
    """What a client gets back for ``query(word)`` sent to ``address`` (see :class:`Echo`)."""
    return word[:2].upper() + address + b":" + word


class Echo:
    """A handler that remembers its calls and answers with the local address it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, tuple | None, bytes]] = []

    def __call__(
        self, wires: list[bytes], peers: list[tuple] | None, local: list[bytes]
    ) -> list[bytes | None]:
        told = peers if peers is not None else [None] * len(wires)
        self.calls += zip(wires, told, local, strict=True)
        return [
            None if data == b"silence" else address + b":" + data
            for data, address in zip(wires, local, strict=True)
        ]


@pytest.fixture
def client() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


@pytest.fixture(params=[socket.AF_INET6, socket.AF_INET], ids=["dual-stack", "ipv4"])
def server(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    family = request.param
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        sock.setblocking(False)
        pktinfo.request_destination(sock, LINUX, dual_stack=family == socket.AF_INET6)
        yield sock


def v4(spec_dst: str, addr: str) -> pktinfo.AncData:
    return [(socket.IPPROTO_IP, 8, in_pktinfo(1, spec_dst, addr))]


def seen_from(server: socket.socket, client: socket.socket) -> tuple:
    """The loopback client's address as ``server`` reports it: v4-mapped on a dual-stack socket."""
    port = client.getsockname()[1]
    if server.family == socket.AF_INET6:
        return ("::ffff:127.0.0.1", port, 0, 0)
    return ("127.0.0.1", port)


def scenario(server: socket.socket, client: socket.socket) -> list[Arrival]:
    """Every kind of datagram: answered, refused for each reason, and a reply whose source
    address is gone in the middle of the batch, with answered ones after it."""
    dual = server.family == socket.AF_INET6
    peer = seen_from(server, client)
    port_zero = (peer[0], 0, *peer[2:])
    arrivals = [
        Arrival(query(b"first"), peer, v4("127.0.0.1", "127.0.0.1")),
        Arrival(query(b"alias"), peer, v4("127.0.0.53", "127.0.0.53")),
        Arrival(query(b"cut"), peer, v4("127.0.0.1", "127.0.0.1"), socket.MSG_TRUNC),
        Arrival(query(b"zero"), port_zero, v4("127.0.0.1", "127.0.0.1")),
        Arrival(query(b"silence"), peer, v4("127.0.0.1", "127.0.0.1")),
        Arrival(query(b"broadcast"), peer, v4("127.0.0.1", "255.255.255.255")),
        Arrival(query(b"gone"), peer, v4("192.0.2.99", "192.0.2.99")),
        Arrival(query(b"unknown"), peer, []),
        Arrival(query(b"ctrunc"), peer, v4("192.0.2.99", "192.0.2.99"), socket.MSG_CTRUNC),
        Arrival(query(b"last"), peer, v4("127.0.1.1", "127.0.1.1")),
    ]
    if dual:
        scoped = ("fe80::1", 5353, 0x12345, 7)
        to_loopback = [(socket.IPPROTO_IPV6, 50, in6_pktinfo("::1", 1))]
        arrivals.insert(5, Arrival(query(b"silence"), scoped, to_loopback))
    return arrivals


EXPECTED_DROPS = {
    "truncated": 1,
    "source_port_zero": 1,
    "no_reply": 1,
    "non_unicast_destination": 1,
    "reply_source_gone": 1,
    "pktinfo_missing": 2,
}


def expected_replies(server: socket.socket) -> list[tuple[bytes, str]]:
    """Without a trusted pktinfo report the handler is told the bound (wildcard) address."""
    bound = bytes(16 if server.family == socket.AF_INET6 else 4)
    return [
        (echoed(b"\x7f\0\0\x01", b"first"), "127.0.0.1"),
        (echoed(b"\x7f\0\0\x35", b"alias"), "127.0.0.53"),
        (echoed(bound, b"unknown"), "127.0.0.1"),
        (echoed(bound, b"ctrunc"), "127.0.0.1"),
        (echoed(b"\x7f\0\x01\x01", b"last"), "127.0.1.1"),
    ]


def replies(client: socket.socket) -> list[tuple[bytes, str]]:
    """Everything the client has received; loopback delivers within the send call."""
    received = []
    while True:
        try:
            data, (host, _port) = client.recvfrom(100)
        except BlockingIOError:
            return received
        received.append((data, host))


def test_one_packet_loop_on_the_scenario(server: socket.socket, client: socket.socket) -> None:
    """The reference the batched loop is held to."""
    drops: Counter[str] = Counter()
    handler = Echo()
    endpoint = UdpEndpoint(server, handler, LINUX, drops)
    for arrival in scenario(server, client):
        endpoint.serve(arrival.data, arrival.ancdata, arrival.flags, arrival.peer)
    assert drops == EXPECTED_DROPS | {"no_reply": 2 if server.family == socket.AF_INET6 else 1}
    assert replies(client) == expected_replies(server)


@pytest.mark.parametrize("needs_peer", [True, False], ids=["peer", "no-peer"])
@pytest.mark.parametrize("batch", [64, 4, 1])
def test_batched_loop_behaves_like_the_one_packet_loop(
    server: socket.socket, client: socket.socket, batch: int, needs_peer: bool
) -> None:
    """Also without the peer's address, which only the query log wants: the handler is told
    ``None``, and port zero is still refused."""
    arrivals = scenario(server, client)
    reference_drops: Counter[str] = Counter()
    reference = Echo()
    one_packet = UdpEndpoint(server, reference, LINUX, reference_drops, needs_peer)
    for arrival in arrivals:
        one_packet.serve(arrival.data, arrival.ancdata, arrival.flags, arrival.peer)
    reference_replies = replies(client)

    drops: Counter[str] = Counter()
    handler = Echo()
    endpoint = batched.BatchedUdpEndpoint(server, handler, LINUX, drops, batch, needs_peer)
    endpoint._recvmmsg = Kernel(arrivals)
    while endpoint._recvmmsg.queued:
        endpoint.on_readable()
    assert handler.calls == reference.calls
    assert all((peer is not None) == needs_peer for _data, peer, _local in handler.calls)
    assert drops == reference_drops
    assert replies(client) == reference_replies == expected_replies(server)


def sifts(endpoint: batched.BatchedUdpEndpoint, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches ``endpoint`` looks at datagram by datagram, as it does them."""
    sifted: list[int] = []
    sift = endpoint._sift

    def counted(count: int, *rest: object) -> object:
        sifted.append(count)
        return sift(count, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(endpoint, "_sift", counted)
    return sifted


def test_a_batch_the_usual_way_is_served_alike(
    server: socket.socket, client: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a batch went all one way, the next that does is served without looking at its
    datagrams one by one; one with a cut datagram, port 0 or another address still is, and
    a missing reply is still counted. Replies and drops are the one-packet loop's."""
    peer = seen_from(server, client)
    port_zero = (peer[0], 0, *peer[2:])
    usual = v4("127.0.0.53", "127.0.0.53")

    def ok(number: int) -> Arrival:
        return Arrival(query(b"ok%d" % number), peer, usual)

    batches = [
        [ok(1), ok(2), ok(3), ok(4)],  # looked at one by one, then the usual way
        [ok(5), ok(6), ok(7), ok(8)],  # the usual way
        [ok(9), Arrival(query(b"cut"), peer, usual, socket.MSG_TRUNC), ok(10), ok(11)],
        [ok(12), Arrival(query(b"zero"), port_zero, usual), ok(13), ok(14)],
        [ok(15), Arrival(query(b"other"), peer, v4("127.0.0.1", "127.0.0.1")), ok(16), ok(17)],
        [Arrival(query(b"silence"), peer, usual), ok(18), ok(19), ok(20)],  # the usual way
    ]
    arrivals = [arrival for batch in batches for arrival in batch]
    reference_drops: Counter[str] = Counter()
    reference = Echo()
    one_packet = UdpEndpoint(server, reference, LINUX, reference_drops)
    for arrival in arrivals:
        one_packet.serve(arrival.data, arrival.ancdata, arrival.flags, arrival.peer)
    reference_replies = replies(client)

    drops: Counter[str] = Counter()
    handler = Echo()
    endpoint = batched.BatchedUdpEndpoint(server, handler, LINUX, drops, 4)
    sifted = sifts(endpoint, monkeypatch)
    endpoint._recvmmsg = Kernel(arrivals)
    while endpoint._recvmmsg.queued:
        endpoint.on_readable()
    assert len(sifted) == 4  # batches 1, 3, 4 and 5
    assert handler.calls == reference.calls
    assert drops == reference_drops == {"truncated": 1, "source_port_zero": 1, "no_reply": 1}
    assert replies(client) == reference_replies
    assert len(reference_replies) == len(arrivals) - 3


def test_a_socket_bound_to_one_address_goes_the_usual_way(
    client: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No control messages at all (none asked for) is a route like any other there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        bound.bind(("127.0.0.1", 0))
        drops: Counter[str] = Counter()
        endpoint = batched.BatchedUdpEndpoint(bound, Echo(), LINUX, drops, 4)
        sifted = sifts(endpoint, monkeypatch)
        peer = client.getsockname()
        words = [b"n%d" % number for number in range(12)]
        endpoint._recvmmsg = Kernel([Arrival(query(word), peer, []) for word in words])
        while endpoint._recvmmsg.queued:
            endpoint.on_readable()
    assert sifted == [4]
    assert not drops
    assert replies(client) == [(echoed(b"\x7f\0\0\x01", word), "127.0.0.1") for word in words]


def test_the_usual_way_is_forgotten_with_the_routes(
    server: socket.socket, client: socket.socket
) -> None:
    """When the remembered routes start over, their control messages are written over: a batch
    the old usual way must not be sent with whatever took its place."""
    peer = seen_from(server, client)
    usual = [Arrival(query(b"usual"), peer, v4("127.0.0.53", "127.0.0.53"))] * 8
    # Each to an address of its own: a reply from the wrong one is seen.
    addresses = [f"127.1.{index >> 8}.{index & 255}" for index in range(batched._REMEMBERED + 10)]
    others = [Arrival(query(b"other"), peer, v4(address, address)) for address in addresses]
    drops: Counter[str] = Counter()
    endpoint = batched.BatchedUdpEndpoint(server, Echo(), LINUX, drops, 8)
    endpoint._recvmmsg = Kernel(usual + others + usual)
    sources: list[str] = []
    while endpoint._recvmmsg.queued:
        endpoint.on_readable()
        sources += [host for _data, host in replies(client)]
    assert not drops
    assert sources[:8] == sources[-8:] == ["127.0.0.53"] * 8
    assert sources[8:-8] == addresses


def test_routes_past_the_remembered_ones(server: socket.socket, client: socket.socket) -> None:
    """More distinct control buffers than are remembered (each with its own interface index):
    the memory starts over between batches, and every reply still leaves from its address."""
    peer = seen_from(server, client)
    count = batched._REMEMBERED + 300
    arrivals = [
        Arrival(
            index.to_bytes(2, "big") + b"%d" % index,
            peer,
            [(socket.IPPROTO_IP, 8, in_pktinfo(index, "127.0.0.53", "127.0.0.53"))],
        )
        for index in range(count)
    ]
    drops: Counter[str] = Counter()
    endpoint = batched.BatchedUdpEndpoint(server, Echo(), LINUX, drops, 64)
    endpoint._recvmmsg = Kernel(arrivals)
    received: list[tuple[bytes, str]] = []
    while endpoint._recvmmsg.queued:
        endpoint.on_readable()
        received += replies(client)
    assert not drops
    assert received == [
        (arrival.data[:2] + b"\x7f\0\0\x35:" + arrival.data[2:], "127.0.0.53")
        for arrival in arrivals
    ]


def test_a_receive_error_is_survived(server: socket.socket, client: socket.socket) -> None:
    drops: Counter[str] = Counter()
    endpoint = batched.BatchedUdpEndpoint(server, Echo(), LINUX, drops, 8)
    kernel = Kernel(scenario(server, client)[:2])

    def refused_once(fd: int, messages: int, vlen: int, flags: int, timeout: None) -> int:
        if kernel.calls == 0:
            kernel.calls += 1
            ctypes.set_errno(errno.ECONNREFUSED)
            return -1
        return kernel(fd, messages, vlen, flags, timeout)

    endpoint._recvmmsg = refused_once
    endpoint.on_readable()
    assert [data for data, _host in replies(client)] == [
        echoed(b"\x7f\0\0\x01", b"first"),
        echoed(b"\x7f\0\0\x35", b"alias"),
    ]
    assert not drops


def test_many_queries_are_each_answered_once_in_batches(server: socket.socket) -> None:
    """Real loopback traffic from several clients and addresses, more than a batch holds (and
    less than the default receive buffer)."""
    port = server.getsockname()[1]
    drops: Counter[str] = Counter()
    endpoint = batched.BatchedUdpEndpoint(server, Echo(), LINUX, drops, 64)
    batch_sizes: list[int] = []
    sendmmsg = endpoint._sendmmsg

    def counted(fd: int, messages: int, vlen: int, flags: int) -> int:
        batch_sizes.append(vlen)
        return sendmmsg(fd, messages, vlen, flags)

    endpoint._sendmmsg = counted
    targets = ["127.0.0.1", "127.0.0.53", "127.0.1.1"]
    clients = []
    for target in targets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.connect((target, port))
        clients.append(sock)
    try:
        for number in range(40):
            for sock in clients:
                sock.send(query(b"%02d" % number))
        expected = {
            (index, echoed(socket.inet_aton(target), b"%02d" % number))
            for index, target in enumerate(targets)
            for number in range(40)
        }
        received: list[tuple[int, bytes]] = []
        while len(received) < len(expected):
            readable, _, _ = select.select([server], [], [], 2.0)
            assert readable, f"only {len(received)} of {len(expected)} answered"
            endpoint.on_readable()
            for index, sock in enumerate(clients):
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    while True:
                        received.append((index, sock.recv(100)))
        assert sorted(received) == sorted(expected)
        assert not drops
        assert batch_sizes[0] == 64
        assert sum(batch_sizes) == len(expected)
    finally:
        for sock in clients:
            sock.close()


def test_peers_are_spelled_right_past_the_remembered_hosts(server: socket.socket) -> None:
    """More distinct peers than the text cache holds: it starts over and stays right."""
    dual = server.family == socket.AF_INET6
    peers: list[tuple] = []
    for number in range(5000):
        host = f"10.{number >> 8 & 255}.{number & 255}.{number % 7}"
        peers.append((f"::ffff:{host}", 1024 + number, 0, 0) if dual else (host, 1024 + number))
    handler = Echo()
    endpoint = batched.BatchedUdpEndpoint(server, handler, LINUX, Counter(), 64)
    endpoint._recvmmsg = Kernel([Arrival(query(b"silence"), peer, []) for peer in peers])
    while endpoint._recvmmsg.queued:
        endpoint.on_readable()
    assert [peer for _data, peer, _local in handler.calls] == peers


def test_one_format_reads_a_field_of_every_slot() -> None:
    """The formats that read every header's lengths or every peer's port at once, and write
    every reply's iovec, find each slot ``stride`` bytes after the last."""
    entry = struct.Struct("@2xH")
    memory = bytearray(96)
    for slot, port in enumerate((53, 0, 5353)):
        entry.pack_into(memory, slot * 32, port)
    assert batched._repeated(entry, 32, 3).unpack_from(memory) == (53, 0, 5353)
    assert batched._repeated(entry, 32, 1).unpack_from(memory, 64) == (5353,)


def test_replies_with_gaps_between_them_are_sent_in_runs() -> None:
    """Replies leave from their queries' slots; slots without one split the send."""
    assert batched._runs([0, 1, 2, 5, 6, 9]) == [(0, 3), (5, 2), (9, 1)]
    assert batched._runs([3]) == [(3, 1)]
    assert batched._runs([]) == []
