"""DNS over TCP (RFC 7766): length-prefixed messages, several per connection, answered in order.

:class:`Framer` is the pure part (bytes in, messages out). :class:`TcpConnection` moves bytes
between a non-blocking socket and the framer so that a slow or stalled client costs one
connection slot and nothing else: no call here ever waits.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger(__name__)

Handler = Callable[[bytes], "bytes | None"]

_LENGTH = struct.Struct("!H")
_RECEIVE_SIZE = 65536
# Replies queued for a client that does not read them; past this we stop reading its queries.
_OUTPUT_HIGH_WATER = 65536


class FramingError(Exception):
    """The byte stream cannot be a sequence of DNS messages; the connection must close."""


class Framer:
    """Splits a TCP byte stream into DNS messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages that ``data`` finishes, in order.

        A zero length prefix cannot introduce a DNS message (a header alone is 12 bytes).
        """
        self._buffer += data
        messages = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length == 0:
                raise FramingError("zero-length message")
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
        if not data:
            self._peer_done = True
        else:
            try:
                messages = self._framer.feed(data)
            except FramingError as error:
                log.debug("closing TCP connection: %s", error)
                self.close()
                return
            for message in messages:
                reply = self.handler(message)
                if reply is not None:
                    self._output += frame(reply)
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
