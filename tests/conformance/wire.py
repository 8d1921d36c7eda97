"""Queries as bytes, and one exchange with a server over UDP or TCP.

Most queries are built with dnspython; the ones it refuses to build (two OPT RRs, an OPT with
an owner name, QR=1, a cut question...) are assembled from bytes in ``RAW_BUILDERS``.

"No reply" must be observable without waiting for a timeout: after the case's query, the same
socket sends a *probe* (``example. SOA``, another ID). Both servers answer the datagrams of
one client socket in order (Knot is configured with one UDP worker; nameserverd has one
serving loop, and SO_REUSEPORT would hash one client address to one socket anyway), so once
the probe's answer is in, any answer to the case has arrived too (a final non-blocking read
picks up a straggler). A server that answers neither within ``DEADLINE`` is reported as such,
not taken for silence.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .case import TCP, Case

DEADLINE = 5.0
"""Seconds an exchange may take before the server counts as not answering at all."""

_HEADER = struct.Struct("!HHHHHH")


def _message(case: Case, query_id: int) -> dns.message.Message:
    """The query of ``case`` as dnspython would send it, question letter case as written."""
    query = dns.message.Message(id=query_id)
    query.set_opcode(case.opcode)
    for flag, bit in (("rd", dns.flags.RD), ("cd", dns.flags.CD), ("ad", dns.flags.AD)):
        if getattr(case, flag):
            query.flags |= bit
    query.find_rrset(
        query.question, dns.name.from_text(case.qname), case.rdclass, case.rdtype, create=True
    )
    if case.edns is not None:
        query.use_edns(
            case.edns,
            case.ednsflags | (dns.flags.DO if case.do else 0),
            case.payload,
            options=[dns.edns.GenericOption(code, data) for code, data in case.options],
        )
    return query


def _with_flags(wire: bytes, set_bits: int) -> bytes:
    flags = struct.unpack_from("!H", wire, 2)[0] | set_bits
    return wire[:2] + struct.pack("!H", flags) + wire[4:]


def _add_records(wire: bytes, records: bytes, section: int) -> bytes:
    """Append raw records and count them in ``section`` (1 answer, 2 authority, 3 additional)."""
    header = list(_HEADER.unpack_from(wire))
    header[2 + section] += 1
    return _HEADER.pack(*header) + wire[_HEADER.size :] + records


def _opt_record(owner: bytes = b"\x00", payload: int = 1232, ttl: int = 0) -> bytes:
    """An OPT RR from bytes: owner, TYPE 41, CLASS = payload, TTL = ext-rcode/version/flags."""
    return owner + struct.pack("!HHIH", dns.rdatatype.OPT, payload, ttl, 0)


def _plain(case: Case, query_id: int) -> bytes:
    """The case's query without its OPT; raw builders add their own."""
    query = _message(case, query_id)
    query.use_edns(False)
    return query.to_wire()


def _raw_qr(case: Case, query_id: int) -> bytes:
    return _with_flags(_message(case, query_id).to_wire(), dns.flags.QR)


def _raw_qdcount0(case: Case, query_id: int) -> bytes:
    query = _message(case, query_id)
    query.question = []
    return query.to_wire()


def _raw_qdcount2(case: Case, query_id: int) -> bytes:
    query = _message(case, query_id)
    query.find_rrset(
        query.question, dns.name.from_text("mail.example."), 1, dns.rdatatype.A, create=True
    )
    return query.to_wire()


def _raw_short_header(case: Case, query_id: int) -> bytes:
    return _message(case, query_id).to_wire()[:11]


def _raw_cut_question(case: Case, query_id: int) -> bytes:
    return _plain(case, query_id)[: _HEADER.size + 6]


def _raw_trailing_garbage(case: Case, query_id: int) -> bytes:
    return _message(case, query_id).to_wire() + b"\x00\x01garbage"


def _raw_z_bit(case: Case, query_id: int) -> bytes:
    return _with_flags(_message(case, query_id).to_wire(), 0x0040)


def _raw_tc(case: Case, query_id: int) -> bytes:
    return _with_flags(_message(case, query_id).to_wire(), dns.flags.TC)


def _raw_aa(case: Case, query_id: int) -> bytes:
    return _with_flags(_message(case, query_id).to_wire(), dns.flags.AA)


def _raw_answer_in_query(case: Case, query_id: int) -> bytes:
    record = dns.name.from_text(case.qname).to_wire() + struct.pack(
        "!HHIH4s", dns.rdatatype.A, dns.rdataclass.IN, 0, 4, bytes([192, 0, 2, 10])
    )
    return _add_records(_plain(case, query_id), record, 1)


def _raw_two_opt(case: Case, query_id: int) -> bytes:
    wire = _add_records(_plain(case, query_id), _opt_record(), 3)
    return _add_records(wire, _opt_record(), 3)


def _raw_opt_nonroot(case: Case, query_id: int) -> bytes:
    owner = dns.name.from_text("example.").to_wire()
    return _add_records(_plain(case, query_id), _opt_record(owner), 3)


def _raw_opt_in_answer(case: Case, query_id: int) -> bytes:
    return _add_records(_plain(case, query_id), _opt_record(), 1)


def _raw_opt_extended_rcode(case: Case, query_id: int) -> bytes:
    return _add_records(_plain(case, query_id), _opt_record(ttl=0x01000000), 3)


RAW_BUILDERS: dict[str, Callable[[Case, int], bytes]] = {
    "qr": _raw_qr,
    "qdcount0": _raw_qdcount0,
    "qdcount2": _raw_qdcount2,
    "short-header": _raw_short_header,
    "cut-question": _raw_cut_question,
    "trailing-garbage": _raw_trailing_garbage,
    "z-bit": _raw_z_bit,
    "tc-in-query": _raw_tc,
    "aa-in-query": _raw_aa,
    "answer-in-query": _raw_answer_in_query,
    "two-opt": _raw_two_opt,
    "opt-nonroot": _raw_opt_nonroot,
    "opt-in-answer": _raw_opt_in_answer,
    "opt-extended-rcode": _raw_opt_extended_rcode,
}


def query_wire(case: Case, query_id: int) -> bytes:
    """The bytes sent for ``case``."""
    if case.raw is not None:
        return RAW_BUILDERS[case.raw](case, query_id)
    return _message(case, query_id).to_wire()


def _probe(query_id: int) -> bytes:
    return dns.message.make_query("example.", "SOA", id=query_id, use_edns=False).to_wire()


@dataclass
class Exchange:
    """What came back: the reply to the case (or None), and whether the probe was answered.

    ``others`` holds further messages with the case's ID: a server must answer once.
    ``closed`` says a TCP server closed the connection before answering the probe, which is
    a legitimate end of the wait (servers may close on a malformed message).
    """

    reply: bytes | None
    probe_answered: bool
    closed: bool = False
    others: list[bytes] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether we know the whole outcome; if not, the server hung or died."""
        return self.probe_answered or self.closed


def _query_id(wire: bytes) -> int | None:
    return struct.unpack_from("!H", wire)[0] if len(wire) >= 2 else None


def exchange(case: Case, query_id: int, port: int, host: str = "127.0.0.1") -> Exchange:
    """Send ``case`` then the probe to ``host``/``port``; collect until the probe is answered."""
    wire = query_wire(case, query_id)
    probe_id = query_id ^ 0xFFFF
    closed = False
    if case.transport == TCP:
        messages, probe_answered, closed = _tcp(host, port, [wire, _probe(probe_id)], probe_id)
    else:
        messages, probe_answered = _udp(host, port, [wire, _probe(probe_id)], probe_id)
    mine = [message for message in messages if _query_id(message) == query_id]
    return Exchange(mine[0] if mine else None, probe_answered, closed, mine[1:])


def _udp(host: str, port: int, wires: list[bytes], probe_id: int) -> tuple[list[bytes], bool]:
    received: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        for wire in wires:
            sock.send(wire)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                received.append(sock.recv(65535))
            except TimeoutError:
                break
            if _query_id(received[-1]) == probe_id:
                sock.setblocking(False)
                try:
                    while True:
                        received.append(sock.recv(65535))
                except BlockingIOError:
                    pass
                return received, True
    return received, False


def _tcp(host: str, port: int, wires: list[bytes], probe_id: int) -> tuple[list[bytes], bool, bool]:
    """RFC 7766 framing, both messages pipelined on one connection; EOF ends the wait too.

    Returns the messages, whether the probe was answered and whether the server closed.
    """
    received: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    buffer = b""
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(wire)) + wire for wire in wires))
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65535)
            except TimeoutError:
                break
            except ConnectionResetError:
                return received, False, True
            if not chunk:
                return received, False, True
            buffer += chunk
            while len(buffer) >= 2:
                size = struct.unpack("!H", buffer[:2])[0]
                if len(buffer) < 2 + size:
                    break
                received.append(buffer[2 : 2 + size])
                buffer = buffer[2 + size :]
                if _query_id(received[-1]) == probe_id:
                    return received, True, False
    return received, False, False
