"""One serving process: a selector over the listening sockets and the open TCP connections.

Every socket is non-blocking and every handler returns quickly, so one stalled TCP client or a
flood on one address never delays the others. SIGTERM and SIGINT stop the loop after the event
in hand; the wakeup file descriptor makes the stop immediate instead of at the next timeout.
"""

from __future__ import annotations

import ipaddress
import logging
import selectors
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable

import dns.name
import dns.rcode
import dns.rdatatype

from nameserver import logs
from nameserver.answercache import Facts
from nameserver.config import ServerSettings
from nameserver.logs import QueryLog
from nameserver.metrics import WorkerStats
from nameserver.net import Handler, batched, pktinfo
from nameserver.net.listeners import Endpoint
from nameserver.net.tcp import TcpConnection
from nameserver.net.udp import UdpEndpoint
from nameserver.responder import Responder, Transport

log = logging.getLogger(__name__)

# RFC 7766 §6.2.3 leaves the idle timeout to the server; Knot's default is 10 s.
TCP_IDLE_TIMEOUT = 10.0
# Beyond this, new TCP connections are closed at once: an old one must finish first.
MAX_TCP_CONNECTIONS = 1000
# How often idle TCP connections are looked for when nothing else happens.
_TICK = 1.0

Dispatch = Callable[[int, float], None]


class Server:
    """Serves ``endpoints`` with ``responder`` until :meth:`stop` or SIGTERM/SIGINT.

    ``udp_batch`` is how many datagrams one system call moves on Linux; 1, or a system without
    ``recvmmsg``, serves each UDP socket one ``recvmsg``/``sendmsg`` at a time.
    """

    def __init__(
        self,
        endpoints: list[Endpoint],
        responder: Responder,
        layout: pktinfo.Layout,
        report: Callable[[WorkerStats], None] | None = None,
        query_log: QueryLog | None = None,
        udp_batch: int = ServerSettings.udp_batch,
    ) -> None:
        self.responder = responder
        self.query_log = query_log or QueryLog(enabled=False)
        self.stats = WorkerStats()
        self.drops = self.stats.drops
        self._report = report
        self._last_report = time.monotonic()
        self.connections: dict[socket.socket, TcpConnection] = {}
        self._selector = selectors.DefaultSelector()
        self._running = False
        self._stop_signal: signal.Signals | None = None
        self._reopen_logs = False
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        for sock in (self._wakeup_read, self._wakeup_write):
            sock.setblocking(False)
        self._selector.register(self._wakeup_read, selectors.EVENT_READ, self._drain_wakeup)
        udp_handler = self._guarded(Transport.UDP)
        for endpoint in endpoints:
            if endpoint.sock.type == socket.SOCK_DGRAM:
                sock, peers = endpoint.sock, self.query_log.enabled
                udp = _udp_endpoint(sock, udp_handler, layout, self.drops, udp_batch, peers)
                dispatch: Dispatch = _ignore_arguments(udp.on_readable)
            else:
                dispatch = self._acceptor(endpoint.sock)
            self._selector.register(endpoint.sock, selectors.EVENT_READ, dispatch)

    def run(self) -> None:
        """Serve until stopped; signal handlers are ours for that long."""
        self._running = True
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in _STOP_SIGNALS}
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_reopen_signal)
        previous_wakeup = signal.set_wakeup_fd(self._wakeup_write.fileno())
        try:
            while self._running:
                for key, mask in self._selector.select(timeout=_TICK):
                    key.data(mask, time.monotonic())
                now = time.monotonic()
                self._close_idle(now)
                if self._reopen_logs:
                    self._reopen_logs = False
                    logs.reopen()
                if self._report is not None and now - self._last_report >= _TICK:
                    self._report(self.stats)
                    self._last_report = now
        finally:
            if self._stop_signal is not None:
                log.info("%s received, stopping", self._stop_signal.name)
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        """Close every connection and the loop's own sockets; listeners belong to the caller."""
        for connection in list(self.connections.values()):
            self._forget(connection)
        if self._report is not None:
            self._report(self.stats)
        self._selector.close()
        self._wakeup_read.close()
        self._wakeup_write.close()

    def _on_reopen_signal(self, _signum: int, _frame: object) -> None:
        self._reopen_logs = True

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        # Only a flag: logging here could re-enter a logging call the signal interrupted.
        self._stop_signal = signal.Signals(signum)
        self.stop()

    def _drain_wakeup(self, _mask: int, _now: float) -> None:
        try:
            while self._wakeup_read.recv(64):
                pass
        except BlockingIOError:
            pass

    def _guarded(self, transport: Transport) -> Handler:
        """The responder for one transport, a batch of queries at a time, with bugs contained
        to the query that found them: a batch that fails is answered again one by one."""

        # Looked up once, not per batch: Enum's value is a property.
        label = transport.value
        respond_many, record, clock = (
            self.responder.respond_many,
            self.stats.record,
            time.perf_counter,
        )
        contained = self._contained(transport)

        def handle(
            bodies: list[bytes], peers: list[tuple] | None, local: list[bytes]
        ) -> list[bytes | None]:
            started = clock()
            try:
                replies, facts = respond_many(bodies, transport)
            except Exception:
                replies, facts = contained(bodies)
            seconds = clock() - started
            record(label, local, facts, seconds)
            if peers is not None and self.query_log.enabled:
                for peer, address, reply, known in zip(peers, local, replies, facts, strict=True):
                    if reply is not None and known is not None:
                        self._log_query(transport, peer, address, reply, known, seconds)
            return replies

        return handle

    def _contained(
        self, transport: Transport
    ) -> Callable[[list[bytes]], tuple[list[bytes | None], list[Facts | None]]]:
        """The batch's answers one query at a time: one that fails gets ``None`` and has its
        error logged and counted."""
        respond_many = self.responder.respond_many

        def one_by_one(bodies: list[bytes]) -> tuple[list[bytes | None], list[Facts | None]]:
            replies: list[bytes | None] = []
            facts: list[Facts | None] = []
            for body in bodies:
                try:
                    reply, known = respond_many([body], transport)
                except Exception:
                    log.exception("internal error answering a %s query", transport.value)
                    self.drops["internal_error"] += 1
                    reply, known = [None], [None]
                replies += reply
                facts += known
            return replies, facts

        return one_by_one

    def _log_query(
        self,
        transport: Transport,
        peer: tuple,
        local: bytes,
        reply: bytes,
        facts: Facts,
        seconds: float,
    ) -> None:
        rcode, qtype = facts
        self.query_log.record(
            client=peer[0],
            local=str(ipaddress.ip_address(local)),
            transport=transport.value,
            qname=_question_name(reply),
            qtype="-" if qtype < 0 else dns.rdatatype.to_text(qtype),
            rcode=dns.rcode.to_text(rcode),
            size=len(reply) + 2,
            microseconds=round(seconds * 1e6),
        )

    def _acceptor(self, listener: socket.socket) -> Dispatch:
        handler = self._guarded(Transport.TCP)

        def accept(_mask: int, now: float) -> None:
            try:
                sock, _peer = listener.accept()
            except OSError:
                return
            if len(self.connections) >= MAX_TCP_CONNECTIONS:
                self.drops["tcp_connection_limit"] += 1
                sock.close()
                return
            connection = TcpConnection(sock, handler, now)
            self.connections[sock] = connection
            self._selector.register(sock, selectors.EVENT_READ, self._connection_events(connection))

        return accept

    def _connection_events(self, connection: TcpConnection) -> Dispatch:
        def on_event(mask: int, now: float) -> None:
            if mask & selectors.EVENT_READ:
                connection.on_readable(now)
            if mask & selectors.EVENT_WRITE and not connection.closed:
                connection.on_writable(now)
            self._update(connection)

        return on_event

    def _update(self, connection: TcpConnection) -> None:
        """Register interest in what the connection waits for next, or forget it."""
        if connection.closed:
            self._forget(connection)
            return
        events = (selectors.EVENT_READ if connection.wants_read else 0) | (
            selectors.EVENT_WRITE if connection.wants_write else 0
        )
        if events:
            key = self._selector.get_key(connection.sock)
            if key.events != events:
                self._selector.modify(connection.sock, events, key.data)
        else:
            self._forget(connection)

    def _forget(self, connection: TcpConnection) -> None:
        if self.connections.pop(connection.sock, None) is not None:
            self._selector.unregister(connection.sock)
        connection.close()

    def _close_idle(self, now: float) -> None:
        for connection in list(self.connections.values()):
            if connection.idle_since(now) > TCP_IDLE_TIMEOUT:
                self._forget(connection)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _udp_endpoint(
    sock: socket.socket,
    handler: Handler,
    layout: pktinfo.Layout,
    drops: Counter[str],
    batch: int,
    needs_peer: bool,
) -> UdpEndpoint:
    """The batched loop where asked for and available; said in the log, since a system without
    ``recvmmsg`` quietly serves a fraction of the queries. ``needs_peer``: the query log is on."""
    host, port = sock.getsockname()[:2]
    if batch > 1 and batched.available():
        log.debug("UDP [%s]:%d: up to %d datagrams per recvmmsg/sendmmsg", host, port, batch)
        return batched.BatchedUdpEndpoint(sock, handler, layout, drops, batch, needs_peer)
    log.debug("UDP [%s]:%d: one datagram per recvmsg/sendmsg", host, port)
    return UdpEndpoint(sock, handler, layout, drops, needs_peer)


def _question_name(body: bytes) -> str:
    """The name a response answers, as text, from the response less its ID (the first two
    bytes); read back from the bytes because the fast paths never make a dnspython name, and
    only the query log needs one."""
    if body[2:4] == b"\0\0":
        return "-"
    # Compression pointers count from the ID: put two bytes back in its place.
    return dns.name.from_wire(b"\0\0" + body, 12)[0].to_text()


def _ignore_arguments(callback: Callable[[], None]) -> Dispatch:
    def dispatch(_mask: int, _now: float) -> None:
        callback()

    return dispatch
