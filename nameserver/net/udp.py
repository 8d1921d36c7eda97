"""Datagrams in and out of one UDP socket, each reply from the address its query was sent to.

The handler turns query bytes into reply bytes; this module only decides whether a datagram is
worth answering and how the reply leaves. Nothing on this path may raise into the loop: every
kind of failure is counted and the next datagram is served.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter

from nameserver.net import Handler, pktinfo

log = logging.getLogger(__name__)


# Largest UDP payload; anything bigger is cut by the kernel and flagged MSG_TRUNC.
_MAX_DATAGRAM = 65535
# Room for both pktinfo messages of a dual-stack socket (72 bytes) and then some; Unbound's size.
_ANCILLARY_SPACE = 256
# Datagrams served per readiness event, so that one busy socket cannot starve the others.
_BURST = 64
# The reply's source address left the host between receive and send (an address removed while
# serving); a plain send would only reach the client from a wrong address.
_SOURCE_GONE = (errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENETUNREACH)
# ICMP errors for earlier replies can surface on receive; they concern nobody now.
_RECEIVE_NOISE = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES)


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
        for _ in range(_BURST):
            try:
                data, ancdata, flags, peer = self.sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY_SPACE)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno not in _RECEIVE_NOISE:
                    log.warning("receive failed on %s: %s", _local_name(self.sock), error)
                continue
            self.serve(data, ancdata, flags, peer)

    def serve(self, data: bytes, ancdata: pktinfo.AncData, flags: int, peer: tuple) -> None:
        """Answer one datagram, or count why not."""
        reason = _refusal(flags, peer)
        # A cut control buffer may hold a partial address: trust none of it.
        truncated_control = flags & socket.MSG_CTRUNC
        destination = None if truncated_control else pktinfo.parse(ancdata, self.layout)
        if reason is None and destination is not None and not destination.unicast:
            reason = "non_unicast_destination"
        if reason is not None:
            self.drops[reason] += 1
            return
        local = self._bound if destination is None else destination.address
        reply = self.handler(data, peer, local)
        if reply is None:
            self.drops["no_reply"] += 1
            return
        if destination is None:
            self.drops["pktinfo_missing"] += 1
            control: pktinfo.AncData = []
        else:
            control = pktinfo.control(destination.address, self.sock.family, self.layout)
        self._send(reply, control, peer)

    def _send(self, reply: bytes, control: pktinfo.AncData, peer: tuple) -> None:
        try:
            self.sock.sendmsg([reply], control, 0, peer)
        except OSError as error:
            if error.errno in _SOURCE_GONE:
                self.drops["reply_source_gone"] += 1
            elif error.errno in (errno.EAGAIN, errno.ENOBUFS):
                self.drops["send_buffer_full"] += 1
            elif error.errno == errno.EPERM:
                self.drops["send_refused"] += 1
            else:
                self.drops["send_failed"] += 1
                log.error("reply to %s failed: %s", peer[0], error)


def _refusal(flags: int, peer: tuple) -> str | None:
    """Why a datagram must not be answered, if it must not.

    A cut datagram cannot be parsed faithfully (dnsdist drops it too), and a reply to port 0
    could never be sent (NSD #128).
    """
    if flags & socket.MSG_TRUNC:
        return "truncated"
    if peer[1] == 0:
        return "source_port_zero"
    return None


def _local_name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}"
