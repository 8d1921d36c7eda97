"""Many datagrams per system call on Linux: ``recvmmsg`` in, ``sendmmsg`` out, through ctypes.

One ``recvmsg``/``sendmsg`` pair per datagram caps a Python server near 110k packets/s on
syscall and object overhead alone; batching both directions reaches NSD's rate
(``shared/reference/batched-udp-io.md``). Everything a batch needs (message headers, iovecs,
peer address, control and data buffers, both ways) is allocated once per socket, in one
anonymous mapping whose pages the kernel only commits when a datagram touches them, so a 64 KiB
buffer per slot costs memory only for the bytes that arrive. A reply leaves from its query's slot,
whose message header already names the peer and the slot's data: it is copied there (a short
copy is cheaper than pointing ctypes at a ``bytes`` object), and only its length and, when it
changed, its source's control message are written, each with one ``struct.pack_into``.

What to answer and how is not decided here: :class:`BatchedUdpEndpoint` is a
:class:`~nameserver.net.udp.UdpEndpoint` and runs every datagram through the same decisions;
only the way bytes reach and leave the kernel differs.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import struct
import sys
from collections import Counter

from nameserver.net import Handler, pktinfo
from nameserver.net.udp import ANCILLARY_SPACE, BURST, MAX_DATAGRAM, MSG_CTRUNC, Route, UdpEndpoint


class IoVec(ctypes.Structure):
    """``struct iovec``; this and the two message headers are laid out as in Linux's headers."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


_WORD = ctypes.sizeof(ctypes.c_size_t)
# struct cmsghdr: size_t cmsg_len; int cmsg_level; int cmsg_type; its data is word aligned.
_CMSGHDR = struct.Struct("@Nii")
_MMSG = ctypes.sizeof(MMsgHdr)
_CONTROLLEN_AT = MsgHdr.msg_controllen.offset
# Read per received datagram in one call, from msg_controllen to msg_len: the control length,
# the flags (MSG_TRUNC, MSG_CTRUNC) and the datagram's length.
_RECEIVED = struct.Struct(f"@Ni{MMsgHdr.msg_len.offset - MsgHdr.msg_flags.offset - 4}xI")
# A reply's control message in its header, pointer and length, written in one call; setting
# ctypes fields instead costs a microsecond a reply.
_CONTROL = struct.Struct("@PN")
_CONTROL_AT = MsgHdr.msg_control.offset
_IOV_LEN = struct.Struct("@N")
_IOV_LEN_AT = IoVec.iov_len.offset
_IOVEC = ctypes.sizeof(IoVec)
# The peer as the socket module spells it: ports and flow label in network order, the scope id
# in host order, addresses through inet_ntop (no "%scope" suffix, as Python since 3.7).
_SOCKADDR_IN = struct.Struct("!2xH4s")
_SOCKADDR_IN6 = struct.Struct("!2xHI16s")
_SCOPE_ID = struct.Struct("@I")
_SCOPE_ID_AT = 24
_SOCKADDR_IN_SIZE = 16
_SOCKADDR_IN6_SIZE = 28
_NAME_SPACE = 32  # a sockaddr_in6, rounded up so that slots stay word aligned
# A reply's control message is one pktinfo: CMSG_SPACE(20) for IPv6, CMSG_SPACE(12) for IPv4.
_SEND_CONTROL_SPACE = 64
_DATA_SPACE = MAX_DATAGRAM + 1
# How many parsed pktinfo reports and built source messages are remembered: one per local
# address and interface in practice, far fewer than this. Source messages live in the mapping,
# room for this many plus one batch's worth, so that starting over never moves one in use.
_REMEMBERED = 1024
# How many peer addresses are remembered as text. inet_ntop costs about a microsecond, and an
# authoritative server hears mostly from a few busy resolvers; when full, it starts over.
_REMEMBERED_HOSTS = 4096
_AGAIN = (errno.EAGAIN, errno.EWOULDBLOCK)
# What a datagram's route comes to in the hot loop: the local address the handler is told,
# where the reply's control message is in the mapping and its length (0 and 0: no source
# address to name), and the route itself.
_Known = tuple[bytes, int, int, Route]
# Never block, whatever the socket's mode: the loop serves other sockets too.
_MSG_DONTWAIT = int(socket.MSG_DONTWAIT)


def cmsg_len(size: int) -> int:
    """``CMSG_LEN(size)``: a control message's header and ``size`` bytes of data."""
    return _align(_CMSGHDR.size) + size


def cmsg_space(size: int) -> int:
    """``CMSG_SPACE(size)``: what the message occupies, padded for the next one."""
    return _align(_CMSGHDR.size) + _align(size)


def pack_control(ancdata: pktinfo.AncData) -> bytes:
    """The control buffer ``sendmsg`` would build from ``ancdata``."""
    header = _align(_CMSGHDR.size)
    parts = []
    for level, kind, data in ancdata:
        parts.append(_CMSGHDR.pack(cmsg_len(len(data)), level, kind).ljust(header, b"\0"))
        parts.append(bytes(data).ljust(_align(len(data)), b"\0"))
    return b"".join(parts)


def unpack_control(raw: bytes) -> pktinfo.AncData:
    """The ``(level, type, data)`` list ``recvmsg`` would return for the control buffer ``raw``.

    A message cut short by the end of the buffer keeps the data that fits, as with ``recvmsg``;
    a header claiming less than itself ends the walk, as ``CMSG_NXTHDR`` does.
    """
    header = _align(_CMSGHDR.size)
    found: pktinfo.AncData = []
    offset = 0
    while offset + _CMSGHDR.size <= len(raw):
        length, level, kind = _CMSGHDR.unpack_from(raw, offset)
        if length < header:
            break
        found.append((level, kind, raw[offset + header : offset + length]))
        offset += _align(length)
    return found


def _runs(slots: list[int]) -> list[tuple[int, int]]:
    """The increasing ``slots`` as (first, how many) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for slot in slots:
        if runs and runs[-1][0] + runs[-1][1] == slot:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((slot, 1))
    return runs


def _align(size: int) -> int:
    return (size + _WORD - 1) & ~(_WORD - 1)


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    sendmmsg.restype = ctypes.c_int
    return libc


_LIBC = _load_libc()


def available() -> bool:
    """Whether this system has ``recvmmsg`` and ``sendmmsg`` (Linux with glibc or musl)."""
    return _LIBC is not None


class BatchedUdpEndpoint(UdpEndpoint):
    """Serves one UDP socket ``batch`` datagrams per system call."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        layout: pktinfo.Layout,
        drops: Counter[str],
        batch: int,
        needs_peer: bool = True,
    ) -> None:
        if _LIBC is None:
            raise OSError("recvmmsg and sendmmsg are not available here")
        super().__init__(sock, handler, layout, drops, needs_peer)
        self._recvmmsg = _LIBC.recvmmsg
        self._sendmmsg = _LIBC.sendmmsg
        self._fd = sock.fileno()
        self._batch = batch
        # Enough batches per readiness event to serve the one-packet loop's burst.
        self._batches = max(1, BURST // batch)
        v6 = sock.family == socket.AF_INET6
        self._peer = self._peer_v6 if v6 else self._peer_v4
        self._namelen = _SOCKADDR_IN6_SIZE if v6 else _SOCKADDR_IN_SIZE
        # Per raw control buffer naming a source address to answer from: what it comes to.
        self._routes: dict[bytes, _Known] = {}
        self._hosts: dict[bytes, str] = {}
        self._layout_buffers(batch)

    def _layout_buffers(self, batch: int) -> None:
        """Carve the mapping into its arrays and point the headers at their buffers."""
        sizes = {
            "received": batch * _MMSG,
            "sending": batch * _MMSG,
            "iovecs": batch * _IOVEC,
            "send_iovecs": batch * _IOVEC,
            "names": batch * _NAME_SPACE,
            "controls": batch * ANCILLARY_SPACE,
            "send_controls": (_REMEMBERED + batch) * _SEND_CONTROL_SPACE,
            "data": batch * _DATA_SPACE,
            "send_data": batch * _DATA_SPACE,
        }
        offsets: dict[str, int] = {}
        total = 0
        for name, size in sizes.items():
            offsets[name] = total
            total += _align(size)
        # Private, not mmap's default MAP_SHARED: a process forked later gets its own copy.
        self._memory = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE)
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(self._memory))
        self._offsets = offsets
        received = (MMsgHdr * batch).from_buffer(self._memory, offsets["received"])
        sending = (MMsgHdr * batch).from_buffer(self._memory, offsets["sending"])
        iovecs = (IoVec * batch).from_buffer(self._memory, offsets["iovecs"])
        send_iovecs = (IoVec * batch).from_buffer(self._memory, offsets["send_iovecs"])
        for slot in range(batch):
            iovecs[slot].iov_base = self._base + offsets["data"] + slot * _DATA_SPACE
            iovecs[slot].iov_len = MAX_DATAGRAM
            send_iovecs[slot].iov_base = self._base + offsets["send_data"] + slot * _DATA_SPACE
            header = received[slot].msg_hdr
            header.msg_name = self._base + offsets["names"] + slot * _NAME_SPACE
            header.msg_namelen = _NAME_SPACE
            header.msg_iov = ctypes.addressof(iovecs[slot])
            header.msg_iovlen = 1
            header.msg_control = self._base + offsets["controls"] + slot * ANCILLARY_SPACE
            header.msg_controllen = ANCILLARY_SPACE
            # A reply goes out of the slot its query came in by: to the same peer, from its
            # own data; only its length and its source's control message change.
            reply = sending[slot].msg_hdr
            reply.msg_name = header.msg_name
            reply.msg_namelen = self._namelen
            reply.msg_iov = ctypes.addressof(send_iovecs[slot])
            reply.msg_iovlen = 1
        start = offsets["received"]
        # The kernel overwrites lengths and flags of the headers it fills; this restores them.
        self._pristine = self._memory[start : start + batch * _MMSG]
        # Per slot: where its query's lengths and flags, peer address, data and control buffer
        # are; where its reply's header, iovec length and data are. Computed once, so that
        # the hot loop does no arithmetic to find them.
        self._slots = [
            (
                slot,
                start + slot * _MMSG + _CONTROLLEN_AT,
                offsets["names"] + slot * _NAME_SPACE,
                offsets["data"] + slot * _DATA_SPACE,
                offsets["controls"] + slot * ANCILLARY_SPACE,
            )
            for slot in range(batch)
        ]
        self._places = [
            (
                offsets["sending"] + slot * _MMSG + _CONTROL_AT,
                offsets["send_iovecs"] + slot * _IOVEC + _IOV_LEN_AT,
                offsets["send_data"] + slot * _DATA_SPACE,
            )
            for slot in range(batch)
        ]
        # The route whose control message each slot's reply header names now.
        self._sources: list[_Known | None] = [None] * batch

    def on_readable(self) -> None:
        """Serve what is queued, one ``recvmmsg`` and one ``sendmmsg`` per batch."""
        received = self._base + self._offsets["received"]
        for _ in range(self._batches):
            count = self._recvmmsg(self._fd, received, self._batch, _MSG_DONTWAIT, None)
            if count < 0:
                number = ctypes.get_errno()
                if number in _AGAIN:
                    return
                if number != errno.EINTR:
                    self.receive_failed(number, os.strerror(number))
                continue
            self._serve_batch(count)
            if count < self._batch:
                return

    def _serve_batch(self, count: int) -> None:
        """Answer ``count`` received datagrams and send the replies in one ``sendmmsg``.

        The hot loop of the server. A datagram with a remembered route, no flags and a source
        port is handed on after a handful of reads from the mapping; anything else takes
        :meth:`_admit`. The handler gets the whole batch in one call. A reply goes out of its
        query's slot, whose header already names the peer and the data: it costs a copy, its
        length and, when its source differs from the slot's last reply's, its control message.
        """
        memory = self._memory
        routes = self._routes
        if len(routes) >= _REMEMBERED:
            routes.clear()
        wires: list[bytes] = []
        local: list[bytes] = []
        peers: list[tuple] | None = [] if self.needs_peer else None
        slots: list[int] = []  # the slot of each datagram handed on
        taken: list[_Known] = []
        # Datagrams in a row mostly went to one address: comparing the control buffer with the
        # last one's is cheaper than hashing it.
        last_raw, last_known = b"", None
        for slot, header_at, name_at, data_at, control_at in self._slots[:count]:
            controllen, flags, length = _RECEIVED.unpack_from(memory, header_at)
            raw = memory[control_at : control_at + controllen]
            if raw == last_raw:
                known = last_known
            else:
                known = last_known = routes.get(raw)
                last_raw = raw
            # Both port bytes zero: port 0, which is never answered (see _refusal).
            if known is None or flags or not (memory[name_at + 2] or memory[name_at + 3]):
                known = self._admit(raw, flags, name_at)
                if known is None:
                    continue
            wires.append(memory[data_at : data_at + length])
            local.append(known[0])
            slots.append(slot)
            taken.append(known)
            if peers is not None:
                peers.append(self._peer(memory, name_at))
        start = self._offsets["received"]
        memory[start : start + count * _MMSG] = self._pristine[: count * _MMSG]
        if not wires:
            return
        places, sources = self._places, self._sources
        ready: list[int] = []
        for reply, slot, known in zip(self.handler(wires, peers, local), slots, taken, strict=True):
            # Only a missing reply or a missing source (control 0) has something to count.
            if (reply is None or not known[1]) and not self.replying(reply, bool(known[1])):
                continue
            control_at, length_at, data_at = places[slot]
            memory[data_at : data_at + len(reply)] = reply
            _IOV_LEN.pack_into(memory, length_at, len(reply))
            if sources[slot] is not known:
                _CONTROL.pack_into(memory, control_at, known[1], known[2])
                sources[slot] = known
            ready.append(slot)
        if ready and ready[-1] == len(ready) - 1:  # every slot from the first has a reply
            self._send(0, len(ready))
            return
        for first, run in _runs(ready):
            self._send(first, run)

    def _send(self, first: int, count: int) -> None:
        """Send the replies of slots ``first`` to ``first + count - 1``; one that fails is
        counted and skipped."""
        sending = self._base + self._offsets["sending"]
        done = 0
        while done < count:
            slot = first + done
            sent = self._sendmmsg(self._fd, sending + slot * _MMSG, count - done, 0)
            if sent > 0:
                done += sent
                continue
            number = ctypes.get_errno()
            if sent < 0 and number == errno.EINTR:
                continue
            peer = self._peer(self._memory, self._slots[slot][2])
            self.send_failed(number, os.strerror(number), peer)
            done += 1

    def _admit(self, raw: bytes, flags: int, name_at: int) -> _Known | None:
        """What the hot loop leaves out, for a datagram with a control buffer not remembered,
        with flags, or from port 0: its route (remembered when it names a source address to
        answer from), then :meth:`admit`; ``None`` when it is refused."""
        known = self._routes.get(raw)
        if known is None or flags & MSG_CTRUNC:
            route = self.route(unpack_control(raw), flags)
            if route.destination is None or route.refusal is not None:
                # No source to name: answered without one if at all, or refused below.
                known = (route.local, 0, 0, route)
            else:
                known = self._remember(raw, route)
        port = self._memory[name_at + 2] << 8 | self._memory[name_at + 3]
        return known if self.admit(known[3], flags, port) else None

    def _remember(self, raw: bytes, route: Route) -> _Known:
        """Write the route's control message into the mapping and remember both for ``raw``;
        a host has few addresses and interfaces (``_serve_batch`` starts over when many)."""
        packed = pack_control(route.control)
        start = self._offsets["send_controls"] + len(self._routes) * _SEND_CONTROL_SPACE
        self._memory[start : start + len(packed)] = packed
        known = self._routes[raw] = (route.local, self._base + start, len(packed), route)
        return known

    def _peer_v4(self, memory: mmap.mmap, offset: int) -> tuple:
        port, address = _SOCKADDR_IN.unpack_from(memory, offset)
        return self._host(socket.AF_INET, address), port

    def _peer_v6(self, memory: mmap.mmap, offset: int) -> tuple:
        port, flowinfo, address = _SOCKADDR_IN6.unpack_from(memory, offset)
        (scope_id,) = _SCOPE_ID.unpack_from(memory, offset + _SCOPE_ID_AT)
        return self._host(socket.AF_INET6, address), port, flowinfo, scope_id

    def _host(self, family: int, packed: bytes) -> str:
        """``packed`` as the socket module spells it (both families have their own lengths)."""
        host = self._hosts.get(packed)
        if host is None:
            if len(self._hosts) >= _REMEMBERED_HOSTS:
                self._hosts.clear()
            host = self._hosts[packed] = socket.inet_ntop(family, packed)
        return host
