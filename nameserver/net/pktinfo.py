"""Which local address a datagram was sent to, and how to reply from it.

A UDP socket bound to a wildcard address answers from whatever source address the kernel picks,
and a client that asked a secondary address drops such a reply. The kernel tells us each
datagram's destination in ancillary data, and accepts a source address the same way on send.
This module is the pure part of that: it reads the received control messages and builds the one
to send. It never touches a socket except to switch the option on (:func:`request_destination`).

Platforms differ only in option numbers and in the IPv4 structure, so each is a :class:`Layout`
and every function takes one; the tests exercise all layouts on any machine.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass
from typing import NamedTuple

_IN_PKTINFO = struct.Struct("=i4s4s")  # ipi_ifindex, ipi_spec_dst, ipi_addr
_IN6_PKTINFO = struct.Struct("=16sI")  # ipi6_addr, ipi6_ifindex
_V4_MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"

AncData = list[tuple[int, int, bytes]]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one platform family puts a datagram's destination in ancillary data.

    ``ip_full_pktinfo`` says whether IPv4 uses ``struct in_pktinfo`` (Linux ``IP_PKTINFO``,
    macOS likewise) or a bare ``struct in_addr`` (BSD ``IP_RECVDSTADDR`` on receive and
    ``IP_SENDSRCADDR`` on send).
    """

    name: str
    ip_recv_option: int
    ip_recv_type: int
    ip_send_type: int
    ip_full_pktinfo: bool
    ipv6_recv_option: int
    ipv6_pktinfo: int


LINUX = Layout("linux", 8, 8, 8, True, 49, 50)
# FreeBSD, OpenBSD, NetBSD, DragonFly: IP_SENDSRCADDR is defined equal to IP_RECVDSTADDR (7).
BSD = Layout("bsd", 7, 7, 7, False, 36, 46)
# macOS has no IP_SENDSRCADDR but has IP_PKTINFO (26) with Linux's struct; IPv6 numbers are the
# RFC 3542 ones that __APPLE_USE_RFC_3542 selects.
DARWIN = Layout("darwin", 26, 26, 26, True, 61, 46)


def layout_for(platform: str = sys.platform) -> Layout:
    """The layout of ``platform`` (a ``sys.platform`` value)."""
    if platform.startswith("linux"):
        return LINUX
    if platform == "darwin":
        return DARWIN
    if platform.startswith(("freebsd", "openbsd", "netbsd", "dragonfly")):
        return BSD
    raise OSError(f"no known way to learn a datagram's destination address on {platform}")


class Destination(NamedTuple):
    """The address a datagram was sent to, as the kernel reported it.

    ``address`` is packed: 4 bytes for IPv4 (an IPv4-mapped IPv6 address is unmapped, so both
    socket kinds agree), 16 for IPv6. ``route_source`` is Linux's ``ipi_spec_dst``, which
    differs from the header destination only for broadcast and multicast; ``None`` elsewhere.
    ``ifindex`` is the receiving interface, for logs only: replies never force it.
    """

    address: bytes
    ifindex: int
    route_source: bytes | None = None

    @property
    def unicast(self) -> bool:
        """Whether a reply from this address is meaningful; DNS servers ignore the rest."""
        if len(self.address) == 16:
            return self.address[0] != 0xFF
        first = self.address[0]
        if 224 <= first <= 239 or self.address == b"\xff\xff\xff\xff":
            return False
        return self.route_source is None or self.route_source == self.address


def request_destination(sock: socket.socket, layout: Layout, dual_stack: bool) -> None:
    """Ask the kernel to report each datagram's destination on ``sock``.

    On a dual-stack IPv6 socket IPv4 arrivals are asked for twice: the IPv4 option also yields
    ``ipi_spec_dst``, which is how subnet-directed broadcasts are told from unicast.
    """
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, layout.ipv6_recv_option, 1)
        if dual_stack and layout is LINUX:
            sock.setsockopt(socket.IPPROTO_IP, layout.ip_recv_option, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, layout.ip_recv_option, 1)


def parse(ancdata: AncData, layout: Layout) -> Destination | None:
    """The destination in received ancillary data, or ``None`` when there is none to use.

    An IPv4 report wins over an IPv6 one for the same datagram because only it carries
    ``ipi_spec_dst``. A wildcard address in the report ("the kernel lies", as dnsdist puts it)
    counts as none. Short or foreign control messages are ignored, never fatal.
    """
    found: Destination | None = None
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == layout.ip_recv_type:
            ipv4 = _parse_ipv4(data, layout)
            if ipv4 is not None:
                found = ipv4
                break
        elif (
            level == socket.IPPROTO_IPV6
            and kind == layout.ipv6_pktinfo
            and len(data) >= _IN6_PKTINFO.size
        ):
            addr6, ifindex = _IN6_PKTINFO.unpack_from(data)
            found = Destination(_unmap(addr6), ifindex)
    if found is None or not any(found.address):
        return None
    return found


def control(address: bytes, family: int, layout: Layout) -> AncData:
    """The control message that makes a reply on a ``family`` socket leave from ``address``.

    Built fresh every time: echoing what was received would carry an interface index that
    bypasses the routing table (Unbound #660, Knot #543) and any other message types. IPv4
    puts the source in ``ipi_spec_dst`` (offset 4); the kernel ignores ``ipi_addr`` on send.
    An IPv4 address on an IPv6 socket goes out IPv4-mapped, which Linux and FreeBSD accept.
    """
    if family == socket.AF_INET6:
        address16 = address if len(address) == 16 else _V4_MAPPED_PREFIX + address
        return [(socket.IPPROTO_IPV6, layout.ipv6_pktinfo, _IN6_PKTINFO.pack(address16, 0))]
    if layout.ip_full_pktinfo:
        data = _IN_PKTINFO.pack(0, address, b"\0\0\0\0")
    else:
        data = bytes(address)
    return [(socket.IPPROTO_IP, layout.ip_send_type, data)]


def packed_address(host: str) -> bytes:
    """A host string of the socket API as :class:`Destination` packs addresses: unmapped, and
    without a scope (``fe80::1%eth0``). For addresses known without pktinfo, as a TCP peer's."""
    host = host.split("%", 1)[0]
    if ":" in host:
        return _unmap(socket.inet_pton(socket.AF_INET6, host))
    return socket.inet_pton(socket.AF_INET, host)


def _parse_ipv4(data: bytes, layout: Layout) -> Destination | None:
    if layout.ip_full_pktinfo:
        if len(data) < _IN_PKTINFO.size:
            return None
        ifindex, spec_dst, addr = _IN_PKTINFO.unpack_from(data)
        return Destination(addr, ifindex, spec_dst)
    return Destination(bytes(data[:4]), 0) if len(data) >= 4 else None


def _unmap(address16: bytes) -> bytes:
    return address16[12:] if address16.startswith(_V4_MAPPED_PREFIX) else address16
