"""The ancillary-data encodings, byte for byte, for every platform layout.

The golden bytes are written out by hand from the C structures (``struct in_pktinfo``,
``struct in6_pktinfo``, BSD's bare ``struct in_addr``) so that a wrong field order cannot pass
by agreeing with itself.
"""

from __future__ import annotations

import socket

import pytest
from support import in6_pktinfo, in_pktinfo, packed

from nameserver.net import pktinfo
from nameserver.net.pktinfo import BSD, DARWIN, LINUX, Destination

IP, IPV6 = socket.IPPROTO_IP, socket.IPPROTO_IPV6


@pytest.mark.parametrize(
    ("platform", "layout"),
    [
        ("linux", LINUX),
        ("darwin", DARWIN),
        ("freebsd14", BSD),
        ("openbsd7", BSD),
        ("netbsd10", BSD),
        ("dragonfly6", BSD),
    ],
)
def test_layout_by_platform(platform: str, layout: pktinfo.Layout) -> None:
    assert pktinfo.layout_for(platform) is layout


def test_unknown_platform_is_an_error() -> None:
    with pytest.raises(OSError, match="win32"):
        pktinfo.layout_for("win32")


def test_linux_option_numbers_match_the_kernel_headers() -> None:
    assert (LINUX.ip_recv_option, LINUX.ip_send_type) == (8, 8)
    assert (LINUX.ipv6_recv_option, LINUX.ipv6_pktinfo) == (49, 50)
    assert LINUX.ipv6_recv_option == socket.IPV6_RECVPKTINFO
    assert LINUX.ipv6_pktinfo == socket.IPV6_PKTINFO


class TestParse:
    def test_linux_ipv4_alias(self) -> None:
        anc = [(IP, 8, in_pktinfo(1, "127.0.0.53", "127.0.0.53"))]
        found = pktinfo.parse(anc, LINUX)
        assert found == Destination(packed("127.0.0.53"), 1, packed("127.0.0.53"))
        assert found.unicast

    def test_linux_reads_ipi_addr_not_ipi_spec_dst(self) -> None:
        anc = [(IP, 8, in_pktinfo(2, "10.53.0.1", "10.53.0.2"))]
        found = pktinfo.parse(anc, LINUX)
        assert found is not None
        assert found.address == packed("10.53.0.2")

    def test_linux_ipv6(self) -> None:
        found = pktinfo.parse([(IPV6, 50, in6_pktinfo("fd53::2", 7))], LINUX)
        assert found == Destination(packed("fd53::2"), 7)
        assert found.unicast

    def test_dual_stack_ipv4_prefers_the_ipv4_report(self) -> None:
        anc = [
            (IPV6, 50, in6_pktinfo("::ffff:127.0.0.53", 1)),
            (IP, 8, in_pktinfo(1, "127.0.0.53", "127.0.0.53")),
        ]
        found = pktinfo.parse(anc, LINUX)
        assert found == Destination(packed("127.0.0.53"), 1, packed("127.0.0.53"))

    def test_mapped_address_alone_is_unmapped(self) -> None:
        found = pktinfo.parse([(IPV6, 50, in6_pktinfo("::ffff:192.0.2.7", 3))], LINUX)
        assert found == Destination(packed("192.0.2.7"), 3)

    @pytest.mark.parametrize(
        "anc",
        [
            [],
            [(socket.SOL_SOCKET, 29, b"\0" * 16)],  # SO_TIMESTAMP
            [(IPV6, 50, b"\xfd\x53" + b"\0" * 8)],
            [(IP, 8, b"\0" * 6)],
            [(IP, 8, in_pktinfo(1, "0.0.0.0", "0.0.0.0"))],
            [(IPV6, 50, in6_pktinfo("::", 1))],
        ],
        ids=["empty", "foreign", "short-v6", "short-v4", "zero-v4", "zero-v6"],
    )
    def test_nothing_usable_is_none(self, anc: pktinfo.AncData) -> None:
        assert pktinfo.parse(anc, LINUX) is None

    @pytest.mark.parametrize(
        ("spec_dst", "addr"),
        [
            ("10.53.0.1", "255.255.255.255"),
            ("10.53.0.1", "10.53.0.255"),
            ("10.53.0.1", "224.0.0.251"),
            ("10.53.0.1", "239.255.255.250"),
        ],
    )
    def test_broadcast_and_multicast_are_not_unicast(self, spec_dst: str, addr: str) -> None:
        found = pktinfo.parse([(IP, 8, in_pktinfo(2, spec_dst, addr))], LINUX)
        assert found is not None
        assert not found.unicast

    def test_ipv6_multicast_is_not_unicast(self) -> None:
        found = pktinfo.parse([(IPV6, 50, in6_pktinfo("ff02::1", 2))], LINUX)
        assert found is not None
        assert not found.unicast

    def test_bsd_recvdstaddr(self) -> None:
        found = pktinfo.parse([(IP, 7, packed("192.0.2.53"))], BSD)
        assert found == Destination(packed("192.0.2.53"), 0)
        assert found.unicast

    def test_bsd_ipv6(self) -> None:
        found = pktinfo.parse([(IPV6, 46, in6_pktinfo("2001:db8::53", 4))], BSD)
        assert found == Destination(packed("2001:db8::53"), 4)

    def test_bsd_ignores_linux_numbers(self) -> None:
        assert pktinfo.parse([(IP, 8, in_pktinfo(1, "10.0.0.1", "10.0.0.1"))], BSD) is None

    def test_darwin_pktinfo(self) -> None:
        anc = [(IP, 26, in_pktinfo(1, "192.0.2.53", "192.0.2.53"))]
        assert pktinfo.parse(anc, DARWIN) == Destination(
            packed("192.0.2.53"), 1, packed("192.0.2.53")
        )


class TestControl:
    def test_linux_ipv4_puts_the_source_in_ipi_spec_dst_with_ifindex_zero(self) -> None:
        # The man-page trap (golang/net before edb50c0a): the source belongs at offset 4.
        [(level, kind, data)] = pktinfo.control(packed("127.0.0.53"), socket.AF_INET, LINUX)
        assert (level, kind) == (IP, 8)
        assert data == b"\x00\x00\x00\x00" + b"\x7f\x00\x00\x35" + b"\x00\x00\x00\x00"

    def test_linux_ipv6_with_ifindex_zero(self) -> None:
        [(level, kind, data)] = pktinfo.control(packed("fd53::2"), socket.AF_INET6, LINUX)
        assert (level, kind) == (IPV6, 50)
        assert data == b"\xfd\x53" + b"\x00" * 13 + b"\x02" + b"\x00" * 4

    def test_ipv4_source_on_an_ipv6_socket_is_mapped(self) -> None:
        [(level, kind, data)] = pktinfo.control(packed("127.0.0.53"), socket.AF_INET6, LINUX)
        assert (level, kind) == (IPV6, 50)
        assert data == b"\x00" * 10 + b"\xff\xff\x7f\x00\x00\x35" + b"\x00" * 4

    def test_bsd_ipv4_sendsrcaddr(self) -> None:
        control = pktinfo.control(packed("192.0.2.53"), socket.AF_INET, BSD)
        assert control == [(IP, 7, b"\xc0\x00\x02\x35")]

    def test_bsd_ipv6(self) -> None:
        [(level, kind, data)] = pktinfo.control(packed("2001:db8::53"), socket.AF_INET6, BSD)
        assert (level, kind) == (IPV6, 46)
        assert data == packed("2001:db8::53") + b"\x00" * 4

    def test_darwin_ipv4(self) -> None:
        control = pktinfo.control(packed("192.0.2.53"), socket.AF_INET, DARWIN)
        assert control == [(IP, 26, b"\x00" * 4 + b"\xc0\x00\x02\x35" + b"\x00" * 4)]

    def test_round_trip_keeps_the_address_and_drops_the_ifindex(self) -> None:
        received = pktinfo.parse([(IPV6, 50, in6_pktinfo("fe80::53", 9))], LINUX)
        assert received is not None
        [(_, _, data)] = pktinfo.control(received.address, socket.AF_INET6, LINUX)
        assert data == packed("fe80::53") + b"\x00" * 4


class TestRequestDestination:
    def test_dual_stack_asks_for_both_families(self) -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            pktinfo.request_destination(sock, LINUX, dual_stack=True)
            assert sock.getsockopt(IPV6, LINUX.ipv6_recv_option) == 1
            assert sock.getsockopt(IP, LINUX.ip_recv_option) == 1

    def test_ipv6_only_asks_for_ipv6(self) -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            pktinfo.request_destination(sock, LINUX, dual_stack=False)
            assert sock.getsockopt(IPV6, LINUX.ipv6_recv_option) == 1
            assert sock.getsockopt(IP, LINUX.ip_recv_option) == 0

    def test_ipv4(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            pktinfo.request_destination(sock, LINUX, dual_stack=False)
            assert sock.getsockopt(IP, LINUX.ip_recv_option) == 1
