"""Many datagrams per system call on Linux: ``recvmmsg`` in, ``sendmmsg`` out, through ctypes.

One ``recvmsg``/``sendmsg`` pair per datagram caps a Python server near 110k packets/s on
syscall and object overhead alone; batching both directions reaches NSD's rate
(``shared/reference/batched-udp-io.md``). Everything a batch needs (message headers, iovecs,
peer address, control and data buffers, both ways) is allocated once per socket, in one
anonymous mapping whose pages the kernel only commits when a datagram touches them, so a 64 KiB
buffer per slot costs memory only for the bytes that arrive. A reply leaves from its query's slot,
whose message header already names the peer, in two pieces: the query's ID, straight from the
slot's receive buffer, and the handler's reply. A batch's replies are copied into the mapping
together (a copy is cheaper than pointing ctypes at ``bytes`` objects) and their iovecs written
with one ``struct.pack_into``; a slot's control message only when its source changed.

The interpreter's work per datagram is what costs here, so every read or write that can serve
a whole batch in one call does. Above all, a batch whose datagrams all went to the address the
previous such batch went to (a busy resolver asking one address) is recognised by one
comparison of its control buffers, which are kept zeroed between batches for it: no datagram is
then looked at one by one except to cut out its bytes.

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
from itertools import accumulate, chain
from operator import itemgetter

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
# The peer's port in its address, either family, in network order.
_PORT = struct.Struct("!2xH")
# A reply's iovec: where it starts, how long it is.
_IOV = struct.Struct("@PN")
_IOVEC = ctypes.sizeof(IoVec)
# A reply is sent in two pieces: its query's ID, then what the handler answered.
_REPLY_IOVECS = 2
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
# where the reply's control message is in the mapping and its length (0 and 0: a wildcard
# socket's reply with no source address to name; a length of 0 alone: a socket bound to one
# address, whose replies leave from it), and the route itself.
_Known = tuple[bytes, int, int, Route]
_LOCAL = itemgetter(0)
_SOURCE = itemgetter(1)
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


def _repeated(entry: struct.Struct, stride: int, count: int) -> struct.Struct:
    """``count`` times ``entry`` (whose format starts with its byte order), ``stride`` bytes
    apart: one call reads or writes its fields in every slot of a batch (and writing zeroes
    the bytes between them)."""
    order, body = entry.format[0], entry.format[1:]
    return struct.Struct(order + f"{body}{stride - entry.size}x" * (count - 1) + body)


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
            "send_iovecs": batch * _REPLY_IOVECS * _IOVEC,
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
        # Where each slot's query and its peer's address are in the mapping.
        data_at = [offsets["data"] + slot * _DATA_SPACE for slot in range(batch)]
        self._names_at = [offsets["names"] + slot * _NAME_SPACE for slot in range(batch)]
        for slot in range(batch):
            iovecs[slot].iov_base = self._base + data_at[slot]
            iovecs[slot].iov_len = MAX_DATAGRAM
            header = received[slot].msg_hdr
            header.msg_name = self._base + self._names_at[slot]
            header.msg_namelen = _NAME_SPACE
            header.msg_iov = ctypes.addressof(iovecs[slot])
            header.msg_iovlen = 1
            header.msg_control = self._base + offsets["controls"] + slot * ANCILLARY_SPACE
            header.msg_controllen = ANCILLARY_SPACE
            # A reply goes out of the slot its query came in by, to the same peer; its iovec
            # and, when its source changed, its control message are written per batch.
            reply = sending[slot].msg_hdr
            reply.msg_name = header.msg_name
            reply.msg_namelen = self._namelen
            reply.msg_iov = self._base + offsets["send_iovecs"] + slot * _REPLY_IOVECS * _IOVEC
            reply.msg_iovlen = _REPLY_IOVECS
        start = offsets["received"]
        # The kernel overwrites lengths and flags of the headers it fills, and leaves in each
        # control buffer what it wrote; this restores both (controls to zeroes, see the top).
        self._pristine = memoryview(bytes(self._memory[start : start + batch * _MMSG]))
        self._zeroes = memoryview(bytes(batch * ANCILLARY_SPACE))
        self._controls_at = offsets["controls"]
        # Per slot: where its query less the ID is, and where its reply's control message
        # goes. Computed once, so that the hot loop does no
        # arithmetic to find them. And the formats that read the lengths and flags of the
        # first n headers or the ports of the first n peers, or write the first n replies'
        # iovecs, in one call (at index n - 1).
        self._receipts_at = start + _CONTROLLEN_AT
        self._receipts = [_repeated(_RECEIVED, _MMSG, n) for n in range(1, batch + 1)]
        self._ports = [_repeated(_PORT, _NAME_SPACE, n) for n in range(1, batch + 1)]
        self._bodies_at = [at + 2 for at in data_at]
        self._send_controls = [
            offsets["sending"] + slot * _MMSG + _CONTROL_AT for slot in range(batch)
        ]
        self._send_iovecs = offsets["send_iovecs"]
        self._send_data = offsets["send_data"]
        self._iovecs = [_repeated(_IOV, _IOVEC, _REPLY_IOVECS * n) for n in range(1, batch + 1)]
        # Every reply's iovecs, as written: its ID's (where in the query's buffer, 2 bytes),
        # then its reply's, whose start and length change with every batch.
        self._iovec_values = list(chain.from_iterable((self._base + at, 2, 0, 0) for at in data_at))
        # The route whose control message each slot's reply header names now.
        self._sources: list[_Known | None] = [None] * batch
        # The route of the last batch whose datagrams all went one way, and the control
        # buffers such a batch of any size starts with (each slot's message, then zeroes).
        self._usual: tuple[bytes, _Known] | None = None

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

        The hot loop of the server. A batch that went the usual way, with no flags and no
        port 0, is handed on after one comparison; any other is looked at datagram by datagram
        in :meth:`_sift`. The handler gets the whole batch in one call, and :meth:`_place`
        writes the replies; only a batch with a datagram refused, a reply missing or one
        without a source address to name goes through them one by one to count those.
        """
        memory = self._memory
        # The lengths and flags of every header and every peer's port, in one call each.
        receipts = self._receipts[count - 1].unpack_from(memory, self._receipts_at)
        ports = self._ports[count - 1].unpack_from(memory, self._names_at[0])
        span = count * ANCILLARY_SPACE
        controls = memory[self._controls_at : self._controls_at + span]
        usual = self._usual
        if (
            usual is not None
            and usual[0].startswith(controls)
            and not any(receipts[1::3])
            and 0 not in ports
        ):
            known = usual[1]
            bodies = [
                memory[start : start + length - 2]
                for start, length in zip(self._bodies_at, receipts[2::3], strict=False)
            ]
            taken = [known] * count
            local = [known[0]] * count
            refused: list[int] = []
            sourced = True
        else:
            bodies, taken, refused = self._sift(count, receipts, ports, controls)
            local = list(map(_LOCAL, taken))
            sourced = not refused and all(map(_SOURCE, taken))
        peers = None
        if self.needs_peer:
            peers = [
                self._peer(memory, at)
                for slot, at in enumerate(self._names_at[:count])
                if slot not in refused
            ]
        start = self._offsets["received"]
        memory[start : start + count * _MMSG] = self._pristine[: count * _MMSG]
        memory[self._controls_at : self._controls_at + span] = self._zeroes[:span]
        if not bodies:
            return
        replies = self.handler(bodies, peers, local)
        # The usual batch: every datagram handed on and answered, each from its address.
        if sourced and all(replies):
            self._place(replies, taken)
            self._send(0, count)
            return
        slots = [slot for slot in range(count) if slot not in refused]
        outgoing = [b""] * count
        wanted: list[_Known | None] = [None] * count
        for reply, slot, known in zip(replies, slots, taken, strict=True):
            # Only a missing reply or a missing source (control 0) has something to count.
            if (reply is None or not known[1]) and not self.replying(reply, bool(known[1])):
                continue
            outgoing[slot] = reply
            wanted[slot] = known
        self._place(outgoing, wanted)
        for first, run in _runs([slot for slot, reply in enumerate(outgoing) if reply]):
            self._send(first, run)

    def _sift(
        self, count: int, receipts: tuple[int, ...], ports: tuple[int, ...], controls: bytes
    ) -> tuple[list[bytes], list[_Known], list[int]]:
        """A batch datagram by datagram: the bytes and route of each one handed on, and the
        slots of those refused. A datagram with a remembered route, no flags and a source port
        costs two slices; anything else takes :meth:`_admit`. When all went one way, that is
        the usual way from now on."""
        memory = self._memory
        routes = self._routes
        if len(routes) >= _REMEMBERED:
            routes.clear()
            self._usual = None  # its control message's place is taken by the next one
        bodies: list[bytes] = []
        taken: list[_Known] = []
        refused: list[int] = []
        # Datagrams in a row mostly went to one address: comparing the control buffer with the
        # last one's is cheaper than hashing it.
        last_raw, last_known = b"", None
        arrivals = zip(
            range(count),
            self._bodies_at,
            receipts[0::3],
            receipts[1::3],
            receipts[2::3],
            ports,
            strict=False,
        )
        for slot, body_at, controllen, flags, length, port in arrivals:
            offset = slot * ANCILLARY_SPACE
            raw = controls[offset : offset + controllen]
            # A route just found unknown is looked up again: it may have been learned since.
            if raw != last_raw or last_known is None:
                last_known = routes.get(raw)
                last_raw = raw
            known = last_known
            # Port 0 is never answered (see _refusal).
            if known is None or flags or not port:
                known = self._admit(raw, flags, port)
                if known is None:
                    refused.append(slot)
                    continue
            bodies.append(memory[body_at : body_at + length - 2])
            taken.append(known)
        # Every datagram handed on, all by one route that answers from the address queried.
        if last_known is not None and last_known[1] and taken.count(last_known) == count:
            self._usual = (last_raw.ljust(ANCILLARY_SPACE, b"\0") * self._batch, last_known)
        return bodies, taken, refused

    def _place(self, replies: list[bytes], routes: list[_Known] | list[_Known | None]) -> None:
        """Write the reply of each slot from the first (``b""``: none) in one copy and the
        iovecs of all (each slot's query ID, then its reply) in one call, and the control
        message of each slot's route (``None``: none) where it differs from the one the slot's
        header names already."""
        memory = self._memory
        count = len(replies)
        blob = b"".join(replies)
        memory[self._send_data : self._send_data + len(blob)] = blob
        sizes = list(map(len, replies))
        values = self._iovec_values
        values[2 : 4 * count : 4] = accumulate(sizes[:-1], initial=self._base + self._send_data)
        values[3 : 4 * count : 4] = sizes
        self._iovecs[count - 1].pack_into(memory, self._send_iovecs, *values[: 4 * count])
        sources = self._sources
        if sources[: len(routes)] == routes:
            return
        for slot, known in enumerate(routes):
            if known is not None and sources[slot] is not known:
                _CONTROL.pack_into(memory, self._send_controls[slot], known[1], known[2])
                sources[slot] = known

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
            peer = self._peer(self._memory, self._names_at[slot])
            self.send_failed(number, os.strerror(number), peer)
            done += 1

    def _admit(self, raw: bytes, flags: int, port: int) -> _Known | None:
        """What the hot loop leaves out, for a datagram with a control buffer not remembered,
        with flags, or from port 0 (``port`` is the peer's): its route (remembered when it
        names a source address to answer from), then :meth:`admit`; ``None`` when it is
        refused."""
        known = self._routes.get(raw)
        if known is None or flags & MSG_CTRUNC:
            route = self.route(unpack_control(raw), flags)
            # Remembered when every datagram with this control buffer is answered alike: not
            # when refused (each is counted), cut short, or without a source address to name
            # that a wildcard socket would need.
            if (
                route.refusal is None
                and not flags & MSG_CTRUNC
                and (route.destination is not None or self.bound_to_one)
            ):
                known = self._remember(raw, route)
            else:
                known = (route.local, 0, 0, route)
        return known if self.admit(known[3], flags, port) else None

    def _remember(self, raw: bytes, route: Route) -> _Known:
        """Write the route's control message into the mapping and remember both for ``raw``;
        a host has few addresses and interfaces (``_sift`` starts over when many)."""
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
