"""Case 8: malformed and hostile input never crashes the daemon nor blocks other clients.

This module runs its own daemon (per mode, on its own port) so that a crash here is reported
here and does not take the other modules' daemon down with it.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import dns.name
import pytest

from . import netns
from .checks import assert_alive, assert_authoritative, assert_no_traceback
from .clients import CLIENTS, DigClient, Target, collect_datagrams, connect_tcp, open_udp
from .daemon import Daemon, start_for_mode
from .netns import run_in_netns
from .zonedata import WWW, WWW_A

PORT = 5301
FORMERR = 1
SILENCE = 0.5  # seconds a bad datagram's reply may take to show up (or not)
QR_SILENCE = 1.0  # seconds of required silence after a QR=1 packet
PROMPT = 2.0  # seconds within which a normal query must be answered


def header(qid: int = 0x4E53, flags: int = 0x0000, qd: int = 1, an: int = 0) -> bytes:
    """A 12-byte DNS header (flags 0: a standard query, QR=0)."""
    return struct.pack("!6H", qid, flags, qd, an, 0, 0)


def question(qname: str = WWW, qtype: int = 1) -> bytes:
    """One question-section entry, class IN."""
    return dns.name.from_text(qname).to_wire() + struct.pack("!HH", qtype, 1)


def oversized() -> bytes:
    """4000 bytes: a header claiming one question, then a name that never ends (FORMERR)."""
    body = (b"\x3f" + b"a" * 63) * 62
    return (header() + body)[:4000]


BAD_DATAGRAMS = {
    # QR=0 and a header whose counts promise far more than follows; compression loops after.
    "garbage": header(flags=0x0100, qd=0xFFFF, an=0xFFFF) + b"\xc0\x0c" * 20 + b"\xff" * 7,
    "1-byte": b"\x00",
    "5-byte": header()[:5],
    "oversized-4000": oversized(),
    "qdcount-0": header(qd=0),
    "qdcount-2": header(qd=2) + question(WWW, 1) + question(WWW, 28),
}
RESPONSE_PACKET = header(flags=0x8400, qd=1, an=0) + question()  # QR=1, AA: never answered

TARGETS = [
    pytest.param(netns.V4_ALIASES[0], netns.V4_PRIMARY, id="v4-alias-127.0.0.53"),
    pytest.param(netns.V6_SECOND, netns.V6_FIRST, id="v6-second-fd53::2"),
]


@pytest.fixture(scope="module")
def bad_input_daemon(
    topology: netns.Topology, mode: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    """A daemon of this module's own (see the module docstring)."""
    daemon = start_for_mode(topology, mode, tmp_path_factory.mktemp(f"nsd-bad-{mode}"), PORT)
    yield daemon
    daemon.stop()


def target_of(topology: netns.Topology, address: str, source: str) -> Target:
    """A server-side target on this module's port."""
    return Target(topology.server, address, PORT, source)


def send_raw(target: Target, datagram: bytes) -> socket.socket:
    """Send one datagram from a fresh socket in the target's namespace; return the socket."""

    def send() -> socket.socket:
        sock, where = open_udp(target)
        sock.sendto(datagram, where)
        return sock

    return run_in_netns(target.netns, send)


def still_served(daemon: Daemon, topology: netns.Topology) -> None:
    """Alive, and other clients are answered promptly (UDP and TCP, both families)."""
    assert_alive(daemon)
    clients = [CLIENTS["dnspython"]] + ([CLIENTS["dig"]] if DigClient.available() else [])
    for address, source in ((netns.V4_ALIASES[1], netns.V4_PRIMARY),
                            (netns.V6_SECOND, netns.V6_FIRST)):  # fmt: skip
        target = target_of(topology, address, source)
        for client in clients:
            for tcp in (False, True):
                reply = client.ask(target, WWW, "A", tcp=tcp, timeout=PROMPT)
                transport = "TCP" if tcp else "UDP"
                assert_authoritative(reply, target, WWW, "A", WWW_A, transport=transport)


def assert_formerr_or_nothing(
    received: list[tuple[bytes, str]], target: Target, datagram: bytes
) -> None:
    """Any reply to a malformed query is a FORMERR response from the address asked."""
    for reply, source in received:
        assert source == target.host, f"reply from {source}, not {target.host}"
        assert len(reply) >= 12, f"a {len(reply)}-byte reply is not a DNS message: {reply!r}"
        qid, flags = struct.unpack("!HH", reply[:4])
        assert flags & 0x8000, f"reply without QR: {reply[:12].hex()}"
        assert flags & 0x000F == FORMERR, f"rcode {flags & 0xF}, expected FORMERR (1)"
        if len(datagram) >= 2:
            assert qid == struct.unpack("!H", datagram[:2])[0], "reply does not echo the ID"


@pytest.mark.parametrize("name", list(BAD_DATAGRAMS))
@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_malformed_datagram(
    bad_input_daemon: Daemon, topology: netns.Topology, name: str, address: str, source: str
) -> None:
    """FORMERR or silence; then the daemon still serves everyone (asked while we listen)."""
    target = target_of(topology, address, source)
    datagram = BAD_DATAGRAMS[name]
    log_mark = len(bad_input_daemon.log())
    deadline = time.monotonic() + SILENCE
    with send_raw(target, datagram) as sock:
        still_served(bad_input_daemon, topology)
        received = collect_datagrams(sock, deadline, first_only=True)
    assert_formerr_or_nothing(received, target, datagram)
    assert_alive(bad_input_daemon)
    assert_no_traceback(bad_input_daemon, since=log_mark)


@pytest.mark.parametrize(("address", "source"), TARGETS)
def test_response_packet_gets_no_reply(
    bad_input_daemon: Daemon, topology: netns.Topology, address: str, source: str
) -> None:
    """A QR=1 packet is never answered (answering responses enables reflection loops)."""
    target = target_of(topology, address, source)
    log_mark = len(bad_input_daemon.log())
    deadline = time.monotonic() + QR_SILENCE
    with send_raw(target, RESPONSE_PACKET) as sock:
        still_served(bad_input_daemon, topology)
        received = collect_datagrams(sock, deadline)
    assert received == [], f"the daemon answered a QR=1 packet: {received!r}"
    assert_no_traceback(bad_input_daemon, since=log_mark)


def test_stalled_tcp_clients_block_nobody(
    bad_input_daemon: Daemon, topology: netns.Topology
) -> None:
    """Half-sent TCP messages, held open, do not delay UDP or other TCP clients."""
    log_mark = len(bad_input_daemon.log())
    stalls: list[socket.socket] = []
    try:
        for address, source in ((netns.V4_ALIASES[0], netns.V4_PRIMARY),
                                (netns.V6_SECOND, netns.V6_FIRST)):  # fmt: skip
            target = target_of(topology, address, source)
            for opening in (b"", b"\x00\x40", b"\x00\x40" + header()[:5]):
                sock = run_in_netns(target.netns, connect_tcp, target, PROMPT)
                stalls.append(sock)
                sock.sendall(opening)
        still_served(bad_input_daemon, topology)  # each question times out after PROMPT
    finally:
        for sock in stalls:
            sock.close()
    assert_alive(bad_input_daemon)
    assert_no_traceback(bad_input_daemon, since=log_mark)


def framed_query(qid: int) -> bytes:
    message = header(qid=qid, flags=0x0100) + question()
    return struct.pack("!H", len(message)) + message


def read_frame(sock: socket.socket) -> bytes:
    """One length-prefixed reply; b"" when the server closed the connection instead."""
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
        chunk = sock.recv(65535)
        if not chunk:
            return b""
        data += chunk
    return data[2:]


def test_tcp_query_split_over_many_segments(
    bad_input_daemon: Daemon, topology: netns.Topology
) -> None:
    """A query written a few bytes at a time (Nagle off) is reassembled and answered."""
    target = target_of(topology, netns.V4_ALIASES[0], netns.V4_PRIMARY)

    def exchange() -> bytes:
        with connect_tcp(target, PROMPT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = framed_query(0x5151)
            sock.sendall(stream[:3])
            # Half a query is pending on this connection while everyone else is served.
            still_served(bad_input_daemon, topology)
            for start in range(3, len(stream), 3):
                sock.sendall(stream[start : start + 3])
            return read_frame(sock)

    reply = run_in_netns(target.netns, exchange)
    assert struct.unpack("!HH", reply[:4]) == (0x5151, 0x8500), reply[:12].hex()


@pytest.mark.parametrize(
    "misbehaviour",
    ["close-mid-message", "close-mid-length", "zero-length"],
)
def test_broken_tcp_streams_disturb_nobody(
    bad_input_daemon: Daemon, topology: netns.Topology, misbehaviour: str
) -> None:
    """A connection closed half-way or sending a zero length prefix: the server drops that
    connection (for zero length, it closes it without a reply) and serves everyone else."""
    target = target_of(topology, netns.V6_SECOND, netns.V6_FIRST)
    log_mark = len(bad_input_daemon.log())

    def misbehave() -> bytes:
        with connect_tcp(target, PROMPT) as sock:
            if misbehaviour == "close-mid-message":
                sock.sendall(framed_query(1)[:9])
            elif misbehaviour == "close-mid-length":
                sock.sendall(b"\x00")
            else:
                sock.sendall(framed_query(2) + b"\x00\x00" + framed_query(3))
                return read_frame(sock) + b"|" + read_frame(sock)
            return b""

    seen = run_in_netns(target.netns, misbehave)
    if misbehaviour == "zero-length":
        first, _, after = seen.partition(b"|")
        assert struct.unpack("!H", first[:2])[0] == 2, "the query before the 0 is answered"
        assert after == b"", "nothing is read past a zero length prefix"
    still_served(bad_input_daemon, topology)
    assert_no_traceback(bad_input_daemon, since=log_mark)
