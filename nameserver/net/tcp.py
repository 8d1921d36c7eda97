"""DNS over TCP (RFC 7766): length-prefixed messages, several per connection, answered in order.

:class:`Framer` is the pure part (bytes in, messages out). :class:`TcpConnection` moves bytes
between a non-blocking socket and the framer so that a slow or stalled client costs one
connection slot and nothing else: no call here ever waits.
"""

from __future__ import annotations

import socket
import struct

from nameserver.net import Handler, pktinfo

_LENGTH = struct.Struct("!H")
_RECEIVE_SIZE = 65536
# Replies queued for a client that does not read them; past this we stop reading its queries.
_OUTPUT_HIGH_WATER = 65536


class Framer:
    """Splits a TCP byte stream into DNS messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages that ``data`` finishes, in order.

        A zero length prefix cannot introduce a DNS message (a header alone is 12 bytes): the
        stream is :attr:`broken` from there on, and the messages before it still count.
        """
        self._buffer += data
        messages = []
        while not self.broken and len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length == 0:
                self.broken = True
                break
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            messages.append(bytes(self._buffer[_LENGTH.size : end]))
            del self._buffer[:end]
        return messages


def frame(message: bytes) -> bytes:
    return _LENGTH.pack(len(message)) + message


class TcpConnection:
    """One accepted client. The event loop asks :attr:`wants_read`/:attr:`wants_write` and
    calls :meth:`on_readable`/:meth:`on_writable`; :attr:`closed` tells it to forget us."""

    def __init__(self, sock: socket.socket, handler: Handler, now: float) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.handler = handler
        # A connected socket knows both ends; no ancillary data is needed (RFC 7766 keeps the
        # reply on the connection).
        self.peer = sock.getpeername()
        self.local = pktinfo.packed_address(sock.getsockname()[0])
        self.last_activity = now
        self.closed = False
        self._framer = Framer()
        self._output = bytearray()
        self._peer_done = False

    @property
    def wants_read(self) -> bool:
        return not self._peer_done and len(self._output) < _OUTPUT_HIGH_WATER

    @property
    def wants_write(self) -> bool:
        return bool(self._output)

    def on_readable(self, now: float) -> None:
        try:
            data = self.sock.recv(_RECEIVE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.last_activity = now
        messages = self._framer.feed(data)
        if messages:
            count = len(messages)
            bodies = [message[2:] for message in messages]
            replies = self.handler(bodies, [self.peer] * count, [self.local] * count)
            for message, reply in zip(messages, replies, strict=True):
                if reply is not None:
                    self._output += frame(message[:2] + reply)
        # After a zero length prefix nothing more can be read as DNS: answer what came before
        # it, then close, as at the client's end of stream.
        if not data or self._framer.broken:
            self._peer_done = True
        self.on_writable(now)

    def on_writable(self, now: float) -> None:
        if self._output:
            try:
                sent = self.sock.send(self._output)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            del self._output[:sent]
            self.last_activity = now
        if self._peer_done and not self._output:
            self.close()

    def idle_since(self, now: float) -> float:
        return now - self.last_activity

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()
