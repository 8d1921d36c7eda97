"""Open the listening sockets for the configured addresses.

Wildcard UDP sockets ask for each datagram's destination (see :mod:`pktinfo`); sockets bound
to one address do not need to, and FreeBSD even refuses a source address on them. IPV6_V6ONLY
is always set explicitly, never inherited from ``net.ipv6.bindv6only``, because a dual-stack
``::`` and a ``0.0.0.0`` socket on the same port cannot both exist.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys
from dataclasses import dataclass

from nameserver.net import pktinfo

log = logging.getLogger(__name__)

_WILDCARDS = ("::", "0.0.0.0")
# Linux values missing from Python 3.11's socket module (linux/in.h, linux/in6.h).
_IP_MTU_DISCOVER = 10
_IPV6_MTU_DISCOVER = 23
# Send at the interface MTU and never trust ICMP "packet too big" for UDP: it can only be used to
# force fragmentation on us (the choice of Knot and PowerDNS).
_PMTUDISC_OMIT = 5
_TCP_BACKLOG = 128
# A UDP socket's receive queue, in bytes of kernel accounting (a small datagram costs about
# 1 KiB of it). Linux's default, about 208 KiB, holds well under a second of a busy server's
# queries; a reload or a burst that delays the workers for longer loses queries with it. NSD
# sizes its buffers the same way (so-rcvbuf). SO_RCVBUFFORCE passes net.core.rmem_max when the
# process may (root); otherwise the kernel caps the request at rmem_max.
UDP_RECEIVE_BUFFER = 8 << 20
_SO_RCVBUFFORCE = 33  # Linux, asm-generic/socket.h; not in Python 3.11's socket module


@dataclass(frozen=True)
class Endpoint:
    """One listening socket and what it serves: ``wants_destination`` marks a wildcard UDP
    socket whose replies need the source address set per datagram."""

    sock: socket.socket
    wants_destination: bool

    @property
    def name(self) -> str:
        kind = "udp" if self.sock.type == socket.SOCK_DGRAM else "tcp"
        host, port = self.sock.getsockname()[:2]
        return f"{kind} [{host}]:{port}"


def plan(listen: tuple[str, ...], ipv6_only: bool) -> list[tuple[str, bool]]:
    """The addresses to bind and, for ``::``, its V6ONLY setting.

    ``::`` with ``ipv6_only`` also needs ``0.0.0.0`` for IPv4; without it ``::`` already
    serves IPv4, so a listed ``0.0.0.0`` would only collide with it.
    """
    addresses: list[tuple[str, bool]] = []
    for address in listen:
        if address == "0.0.0.0" and "::" in listen and not ipv6_only:
            log.info("0.0.0.0 is already served by the dual-stack :: socket")
            continue
        addresses.append((address, ipv6_only))
    if "::" in listen and ipv6_only and "0.0.0.0" not in listen:
        addresses.append(("0.0.0.0", ipv6_only))
    return addresses


def open_endpoints(
    listen: tuple[str, ...], port: int, ipv6_only: bool, layout: pktinfo.Layout
) -> list[Endpoint]:
    """Bind UDP and TCP on every planned address; close all and raise on the first failure."""
    endpoints: list[Endpoint] = []
    try:
        for address, v6only in _available(plan(listen, ipv6_only)):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                endpoints.append(_open(address, port, kind, v6only, layout))
    except OSError:
        for endpoint in endpoints:
            endpoint.sock.close()
        raise
    return endpoints


def _available(addresses: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Fall back from ``::`` to ``0.0.0.0`` on a host without IPv6, saying so."""
    if socket.has_ipv6 and _ipv6_works():
        return addresses
    kept = [(address, v6only) for address, v6only in addresses if address != "::"]
    if len(kept) < len(addresses):
        log.warning("IPv6 is not available on this host: listening on 0.0.0.0 instead of ::")
        if all(address != "0.0.0.0" for address, _ in kept):
            kept.append(("0.0.0.0", False))
    return kept


def _ipv6_works() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError as error:
        if error.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return False
        raise
    return True


def _open(address: str, port: int, kind: int, v6only: bool, layout: pktinfo.Layout) -> Endpoint:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        wildcard = address in _WILDCARDS
        if family == socket.AF_INET6:
            # Only "::" may be dual-stack; a specific IPv6 address never receives IPv4.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only or not wildcard))
        wants_destination = kind == socket.SOCK_DGRAM and wildcard
        if kind == socket.SOCK_DGRAM:
            _omit_path_mtu(sock)
            _size_receive_buffer(sock)
            if wants_destination:
                pktinfo.request_destination(sock, layout, dual_stack=not v6only)
        else:
            # Lets a restarted server bind while old connections linger in TIME_WAIT; on TCP it
            # cannot steal a live listener, unlike SO_REUSEADDR on UDP, which is never set.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(_TCP_BACKLOG)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        kind_name = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
        raise OSError(
            error.errno, f"cannot listen on {kind_name} [{address}]:{port}: {error.strerror}"
        ) from error
    return Endpoint(sock, wants_destination)


def _omit_path_mtu(sock: socket.socket) -> None:
    if not sys.platform.startswith("linux"):
        return
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _PMTUDISC_OMIT)
    if sock.family == socket.AF_INET or not sock.getsockopt(
        socket.IPPROTO_IPV6, socket.IPV6_V6ONLY
    ):
        sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _PMTUDISC_OMIT)


def _size_receive_buffer(sock: socket.socket) -> None:
    """Ask for UDP_RECEIVE_BUFFER, past the system's cap where allowed."""
    if sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, UDP_RECEIVE_BUFFER)
            return
        except PermissionError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
