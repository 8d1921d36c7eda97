"""Which sockets a listen list opens, and with which options (loopback, no root needed)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

from nameserver.net import listeners, pktinfo
from nameserver.net.listeners import Endpoint, open_endpoints, plan

LINUX = pktinfo.LINUX


@pytest.fixture
def opened() -> Iterator[list[list[Endpoint]]]:
    """Collects what a test opens and closes it afterwards."""
    batches: list[list[Endpoint]] = []
    yield batches
    for batch in batches:
        for endpoint in batch:
            endpoint.sock.close()


def summary(endpoints: list[Endpoint]) -> list[tuple[str, str, bool]]:
    return [
        (
            "udp" if e.sock.type == socket.SOCK_DGRAM else "tcp",
            e.sock.getsockname()[0],
            e.wants_destination,
        )
        for e in endpoints
    ]


@pytest.mark.parametrize(
    ("listen", "ipv6_only", "expected"),
    [
        (("::",), False, [("::", False)]),
        (("::",), True, [("::", True), ("0.0.0.0", True)]),
        (("::", "0.0.0.0"), False, [("::", False)]),
        (("::", "0.0.0.0"), True, [("::", True), ("0.0.0.0", True)]),
        (("0.0.0.0",), False, [("0.0.0.0", False)]),
        (("127.0.0.1", "::1"), False, [("127.0.0.1", False), ("::1", False)]),
    ],
)
def test_plan(listen: tuple[str, ...], ipv6_only: bool, expected: list[tuple[str, bool]]) -> None:
    assert plan(listen, ipv6_only) == expected


def test_dual_stack_is_one_socket_per_transport_without_v6only(
    opened: list[list[Endpoint]],
) -> None:
    endpoints = open_endpoints(("::",), free_port(), False, LINUX)
    opened.append(endpoints)
    assert summary(endpoints) == [("udp", "::", True), ("tcp", "::", False)]
    for endpoint in endpoints:
        assert endpoint.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0


def test_ipv6_only_adds_an_ipv4_wildcard(opened: list[list[Endpoint]]) -> None:
    endpoints = open_endpoints(("::",), free_port(), True, LINUX)
    opened.append(endpoints)
    assert summary(endpoints) == [
        ("udp", "::", True),
        ("tcp", "::", False),
        ("udp", "0.0.0.0", True),
        ("tcp", "0.0.0.0", False),
    ]
    assert endpoints[0].sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_specific_addresses_need_no_destination(opened: list[list[Endpoint]]) -> None:
    endpoints = open_endpoints(("127.0.0.1", "::1"), free_port(), False, LINUX)
    opened.append(endpoints)
    assert not any(endpoint.wants_destination for endpoint in endpoints)
    assert endpoints[2].sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_a_taken_port_names_the_address_and_closes_the_rest(
    opened: list[list[Endpoint]],
) -> None:
    port = free_port()
    opened.append(open_endpoints(("127.0.0.1",), port, False, LINUX))
    with pytest.raises(OSError, match=rf"cannot listen on UDP \[::\]:{port}"):
        open_endpoints(("::",), port, False, LINUX)


def test_without_ipv6_the_wildcard_falls_back_to_ipv4(
    opened: list[list[Endpoint]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(listeners, "_ipv6_works", lambda: False)
    with caplog.at_level(logging.WARNING):
        endpoints = open_endpoints(("::",), free_port(), False, LINUX)
    opened.append(endpoints)
    assert summary(endpoints) == [("udp", "0.0.0.0", True), ("tcp", "0.0.0.0", False)]
    assert "IPv6 is not available" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux socket accounting")
def test_udp_receive_buffer_is_sized(opened: list[list[Endpoint]]) -> None:
    endpoints = open_endpoints(("127.0.0.1",), free_port(), False, LINUX)
    opened.append(endpoints)
    udp = endpoints[0].sock
    capped = int(Path("/proc/sys/net/core/rmem_max").read_text())
    wanted = listeners.UDP_RECEIVE_BUFFER if os.geteuid() == 0 else capped
    # Linux reports twice what was granted: the other half is its bookkeeping allowance.
    assert udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * min(
        wanted, listeners.UDP_RECEIVE_BUFFER
    )
