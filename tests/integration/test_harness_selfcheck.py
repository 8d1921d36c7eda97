"""The harness must be able to fail: a server that ignores pktinfo is rejected by both clients.

A deliberately naive server (a wildcard dual-stack socket answering with plain ``sendto``) runs
in namespaces of its own. The kernel then picks the reply's source, which is the wrong one for
every interesting address of the layout; if the clients accepted such a reply, every other test
in this suite would prove nothing.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rrset
import pytest

from . import netns
from .checks import assert_authoritative
from .clients import Client, QueryFailed, Target
from .netns import run_in_netns
from .zonedata import WWW, WWW_A

PORT = 5399


def naive_socket() -> socket.socket:
    """A dual-stack UDP socket on [::]:PORT with no pktinfo (call inside the namespace)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", PORT))
    return sock


def serve_naively(sock: socket.socket, stop: threading.Event) -> None:
    """Answer every query with www's A record, letting the kernel choose the source."""
    while not stop.is_set():
        if not select.select([sock], [], [], 0.1)[0]:
            continue
        wire, peer = sock.recvfrom(65535)
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", *WWW_A))
        sock.sendto(response.to_wire(), peer)


@pytest.fixture(scope="module")
def naive_server(netns_privileges: None) -> Iterator[netns.Topology]:
    """The naive server running in a fresh topology of its own."""
    with netns.topology("self") as topo:
        sock = run_in_netns(topo.server, naive_socket)
        stop = threading.Event()
        thread = threading.Thread(target=serve_naively, args=(sock, stop), daemon=True)
        thread.start()
        try:
            yield topo
        finally:
            stop.set()
            thread.join()
            sock.close()


def test_naive_server_works_where_the_kernel_guesses_right(
    client: Client, naive_server: netns.Topology
) -> None:
    """Control: asked at 127.0.0.1 from 127.0.0.1, the naive reply is accepted."""
    target = Target(naive_server.server, netns.V4_PRIMARY, PORT, netns.V4_PRIMARY)
    assert_authoritative(client.ask(target, WWW, "A"), target, WWW, "A", WWW_A)


@pytest.mark.parametrize(
    ("side", "address", "source"),
    [
        pytest.param("server", netns.V4_ALIASES[0], netns.V4_PRIMARY, id="v4-alias-127.0.0.53"),
        pytest.param("server", netns.V6_SECOND, netns.V6_FIRST, id="v6-second-fd53::2"),
        pytest.param("client", f"{netns.LL_SERVER}%{netns.CLIENT_IF}", None, id="link-local"),
    ],
)
def test_wrong_source_reply_is_rejected(
    client: Client, naive_server: netns.Topology, side: str, address: str, source: str | None
) -> None:
    """Without pktinfo the reply comes from 127.0.0.1 / fd53::1 / fe80::2: both clients refuse."""
    where = naive_server.server if side == "server" else naive_server.client
    target = Target(where, address, PORT, source)
    with pytest.raises(QueryFailed):
        client.ask(target, WWW, "A", timeout=1.0)
