"""Datagrams in and out of one UDP socket, each reply from the address its query was sent to.

The handler turns query bytes into reply bytes; this module only decides whether a datagram is
worth answering and how the reply leaves. Nothing on this path may raise into the loop: every
kind of failure is counted and the next datagram is served.

:class:`UdpEndpoint` moves one datagram per ``recvmsg``/``sendmsg`` and runs everywhere. Its
per-datagram decisions (:meth:`~UdpEndpoint.destination`, :meth:`~UdpEndpoint.answer`,
:meth:`~UdpEndpoint.control`, :meth:`~UdpEndpoint.send_failed`,
:meth:`~UdpEndpoint.receive_failed`) are also those of the batched Linux loop in
:mod:`nameserver.net.batched`, which only moves the bytes differently.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter

from nameserver.net import Handler, pktinfo

log = logging.getLogger(__name__)


# Largest UDP payload; anything bigger is cut by the kernel and flagged MSG_TRUNC.
MAX_DATAGRAM = 65535
# Room for both pktinfo messages of a dual-stack socket (72 bytes) and then some; Unbound's size.
ANCILLARY_SPACE = 256
# Datagrams served per readiness event, so that one busy socket cannot starve the others.
BURST = 64
# The reply's source address left the host between receive and send (an address removed while
# serving); a plain send would only reach the client from a wrong address.
_SOURCE_GONE = (errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENETUNREACH)
# ICMP errors for earlier replies can surface on receive; they concern nobody now.
_RECEIVE_NOISE = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES)
# Plain ints: the socket module's are IntFlag members, and ``int & IntFlag`` goes through the
# enum machinery, microseconds per datagram.
MSG_TRUNC = int(socket.MSG_TRUNC)
MSG_CTRUNC = int(socket.MSG_CTRUNC)


class UdpEndpoint:
    """Serves one UDP socket. ``drops`` counts what was not answered, by reason."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        layout: pktinfo.Layout,
        drops: Counter[str],
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.layout = layout
        self.drops = drops
        # Where a datagram went when the kernel does not say: the address the socket is bound to.
        self._bound = pktinfo.packed_address(sock.getsockname()[0])

    def on_readable(self) -> None:
        """Serve the datagrams already queued, up to a burst."""
        for _ in range(BURST):
            try:
                data, ancdata, flags, peer = self.sock.recvmsg(MAX_DATAGRAM, ANCILLARY_SPACE)
            except BlockingIOError:
                return
            except OSError as error:
                self.receive_failed(error.errno, str(error))
                continue
            self.serve(data, ancdata, flags, peer)

    def serve(self, data: bytes, ancdata: pktinfo.AncData, flags: int, peer: tuple) -> None:
        """Answer one datagram, or count why not."""
        destination = self.destination(ancdata, flags)
        reply = self.answer(data, destination, flags, peer)
        if reply is None:
            return
        try:
            self.sock.sendmsg([reply], self.control(destination), 0, peer)
        except OSError as error:
            self.send_failed(error.errno, str(error), peer)

    def destination(self, ancdata: pktinfo.AncData, flags: int) -> pktinfo.Destination | None:
        """Where the datagram was sent, as far as the kernel's report can be trusted."""
        # A cut control buffer may hold a partial address: trust none of it.
        if flags & MSG_CTRUNC:
            return None
        return pktinfo.parse(ancdata, self.layout)

    def answer(
        self, data: bytes, destination: pktinfo.Destination | None, flags: int, peer: tuple
    ) -> bytes | None:
        """The reply to send, or ``None`` with the reason counted."""
        reason = _refusal(flags, peer)
        if reason is None and destination is not None and not destination.unicast:
            reason = "non_unicast_destination"
        if reason is not None:
            self.drops[reason] += 1
            return None
        local = self._bound if destination is None else destination.address
        reply = self.handler(data, peer, local)
        if reply is None:
            self.drops["no_reply"] += 1
        elif destination is None:
            self.drops["pktinfo_missing"] += 1
        return reply

    def control(self, destination: pktinfo.Destination | None) -> pktinfo.AncData:
        """The control messages of a reply: its source address, or none when unknown."""
        if destination is None:
            return []
        return pktinfo.control(destination.address, self.sock.family, self.layout)

    def send_failed(self, number: int | None, message: str, peer: tuple) -> None:
        """Count a reply the kernel refused with errno ``number``."""
        if number in _SOURCE_GONE:
            self.drops["reply_source_gone"] += 1
        elif number in (errno.EAGAIN, errno.ENOBUFS):
            self.drops["send_buffer_full"] += 1
        elif number == errno.EPERM:
            self.drops["send_refused"] += 1
        else:
            self.drops["send_failed"] += 1
            log.error("reply to %s failed: %s", peer[0], message)

    def receive_failed(self, number: int | None, message: str) -> None:
        """Log a receive error unless it is the echo of an earlier reply's ICMP error."""
        if number not in _RECEIVE_NOISE:
            log.warning("receive failed on %s: %s", _local_name(self.sock), message)


def _refusal(flags: int, peer: tuple) -> str | None:
    """Why a datagram must not be answered, if it must not.

    A cut datagram cannot be parsed faithfully (dnsdist drops it too), and a reply to port 0
    could never be sent (NSD #128).
    """
    if flags & MSG_TRUNC:
        return "truncated"
    if peer[1] == 0:
        return "source_port_zero"
    return None


def _local_name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}"
