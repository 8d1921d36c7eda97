"""Shared by the unit tests: control-message bytes written out from the C structures, and a
free loopback port."""

from __future__ import annotations

import ipaddress
import socket


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def in_pktinfo(ifindex: int, spec_dst: str, addr: str) -> bytes:
    """``struct in_pktinfo`` in host byte order, as x86_64 and aarch64 Linux lay it out."""
    return ifindex.to_bytes(4, "little") + packed(spec_dst) + packed(addr)


def in6_pktinfo(addr: str, ifindex: int) -> bytes:
    return packed(addr) + ifindex.to_bytes(4, "little")


def free_port() -> int:
    """A port free for UDP on ``::`` right now (TCP on it is almost always free too)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind(("::", 0))
        return probe.getsockname()[1]
