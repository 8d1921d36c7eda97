"""Datagrams in and out of one UDP socket, each reply from the address its query was sent to.

The handler turns query bytes into reply bytes, both less the ID, which the reply gets from its
query here; this module only decides whether a datagram is worth answering and how the reply
leaves. Nothing on this path may raise into the loop: every kind of failure is counted and the
next datagram is served.

:class:`UdpEndpoint` moves one datagram per ``recvmsg``/``sendmsg`` and runs everywhere. Its
per-datagram decisions (:meth:`~UdpEndpoint.route`, :meth:`~UdpEndpoint.admit`,
:meth:`~UdpEndpoint.replying`, :meth:`~UdpEndpoint.send_failed`,
:meth:`~UdpEndpoint.receive_failed`) are also those of the batched Linux loop in
:mod:`nameserver.net.batched`, which only moves the bytes differently.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from typing import NamedTuple

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


class Route(NamedTuple):
    """What a datagram's destination means for its reply, decided once per destination.

    ``destination`` is the kernel's report (``None`` when it gave none to trust), ``local``
    the address the handler is told, ``refusal`` why nothing may be answered (``None``: answer),
    ``control`` the reply's control messages naming its source.
    """

    destination: pktinfo.Destination | None
    local: bytes
    refusal: str | None
    control: pktinfo.AncData


class UdpEndpoint:
    """Serves one UDP socket. ``drops`` counts what was not answered, by reason."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        layout: pktinfo.Layout,
        drops: Counter[str],
        needs_peer: bool = True,
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.layout = layout
        self.drops = drops
        # Spelling the peer's address costs as much as answering from the cache; the handler
        # is given ``None`` instead when it has said it will not look (no query log).
        self.needs_peer = needs_peer
        # Where a datagram went when the kernel does not say: the address the socket is bound to.
        self._bound = pktinfo.packed_address(sock.getsockname()[0])
        # A socket bound to one address replies from it: it has no source address to name, and
        # none is missing.
        self.bound_to_one = any(self._bound)

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
        route = self.route(ancdata, flags)
        if not self.admit(route, flags, peer[1]):
            return
        peers = [peer] if self.needs_peer else None
        reply = self.handler([data[2:]], peers, [route.local])[0]
        if not self.replying(reply, route.destination is not None):
            return
        try:
            self.sock.sendmsg([data[:2], reply], route.control, 0, peer)
        except OSError as error:
            self.send_failed(error.errno, str(error), peer)

    def route(self, ancdata: pktinfo.AncData, flags: int) -> Route:
        """How to answer a datagram whose control messages were ``ancdata``."""
        # A cut control buffer may hold a partial address: trust none of it.
        destination = None if flags & MSG_CTRUNC else pktinfo.parse(ancdata, self.layout)
        if destination is None:
            return Route(None, self._bound, None, [])
        refusal = None if destination.unicast else "non_unicast_destination"
        control = pktinfo.control(destination.address, self.sock.family, self.layout)
        return Route(destination, destination.address, refusal, control)

    def admit(self, route: Route, flags: int, port: int) -> bool:
        """Whether a datagram goes to the handler at all; the reason is counted when not.
        ``port`` is the peer's."""
        reason = route.refusal or _refusal(flags, port)
        if reason is None:
            return True
        self.drops[reason] += 1
        return False

    def replying(self, reply: bytes | None, sourced: bool) -> bool:
        """Whether the handler's ``reply`` is sent, counting the ones that are not and the
        ones that leave a wildcard socket without a source address (``sourced``: the route
        names one)."""
        if reply is None:
            self.drops["no_reply"] += 1
            return False
        if not sourced and not self.bound_to_one:
            self.drops["pktinfo_missing"] += 1
        return True

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


def _refusal(flags: int, port: int) -> str | None:
    """Why a datagram must not be answered, if it must not.

    A cut datagram cannot be parsed faithfully (dnsdist drops it too), and a reply to port 0
    could never be sent (NSD #128).
    """
    if flags & MSG_TRUNC:
        return "truncated"
    if port == 0:
        return "source_port_zero"
    return None


def _local_name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}"
