"""RFC 7766 framing, pure, and one connection driven over a socketpair."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from nameserver.net.tcp import Framer, TcpConnection, frame


class TestFramer:
    def test_whole_messages(self) -> None:
        assert Framer().feed(frame(b"one") + frame(b"two")) == [b"one", b"two"]

    def test_a_message_split_over_many_segments(self) -> None:
        framer = Framer()
        stream = frame(b"x" * 300) + frame(b"tail")
        pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]
        received = [message for piece in pieces for message in framer.feed(piece)]
        assert received == [b"x" * 300, b"tail"]

    def test_a_length_alone_waits(self) -> None:
        framer = Framer()
        assert framer.feed(b"\x00\x20") == []
        assert framer.feed(b"a" * 0x20) == [b"a" * 0x20]

    def test_zero_length_breaks_the_stream_after_the_messages_before_it(self) -> None:
        framer = Framer()
        assert framer.feed(frame(b"ok") + b"\x00\x00" + frame(b"never")) == [b"ok"]
        assert framer.broken
        assert framer.feed(frame(b"later")) == []


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Both ends of a loopback TCP connection (the connection reads its addresses)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        server, _ = listener.accept()
    client.settimeout(1.0)
    yield server, client
    server.close()
    client.close()


def upper(bodies: list[bytes], peers: list[tuple] | None, local: list[bytes]) -> list[bytes | None]:
    """Each message in capitals, but for the first two bytes (an ID: "1:", "2:"), which the
    connection puts back in front of the reply; no reply to "quiet"."""
    assert peers is not None
    assert {(peer[0], address) for peer, address in zip(peers, local, strict=True)} == {
        ("127.0.0.1", b"\x7f\x00\x00\x01")
    }
    return [None if body == b"quiet" else body.upper() for body in bodies]


def test_pipelined_queries_are_answered_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    connection = TcpConnection(server, upper, now=0.0)
    client.sendall(frame(b"1:first") + frame(b"2:quiet") + frame(b"3:second"))
    connection.on_readable(now=1.0)
    assert client.recv(100) == frame(b"1:FIRST") + frame(b"3:SECOND")
    assert connection.last_activity == 1.0
    assert not connection.closed


def test_peer_close_closes_after_the_replies(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    connection = TcpConnection(server, upper, now=0.0)
    client.sendall(frame(b"1:bye"))
    client.shutdown(socket.SHUT_WR)
    connection.on_readable(now=1.0)
    connection.on_readable(now=1.0)
    assert client.recv(100) == frame(b"1:BYE")
    assert connection.closed


def test_zero_length_prefix_closes_the_connection_after_earlier_replies(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    connection = TcpConnection(server, upper, now=0.0)
    client.sendall(frame(b"1:first") + b"\x00\x00" + frame(b"2:second"))
    connection.on_readable(now=1.0)
    assert connection.closed
    assert client.recv(100) == frame(b"1:FIRST")
    assert client.recv(100) == b""


def test_a_stalled_client_only_ages(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    connection = TcpConnection(server, upper, now=0.0)
    client.sendall(b"\x00\x40")
    connection.on_readable(now=5.0)
    assert not connection.closed
    assert connection.wants_read
    assert connection.idle_since(now=16.0) == 11.0
