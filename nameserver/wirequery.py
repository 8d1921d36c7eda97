"""The few facts of an ordinary query, read straight from its bytes.

Parsing a query with dnspython costs tens of microseconds; the answer cache and the negative
fast path need only the question and the EDNS shape, which a short walk over the bytes gives.
Only the common shape is recognised (one question without compression, at most an OPT record,
nothing after it); anything else is ``None`` and takes dnspython's path, which knows the rules
for every odd case and says FORMERR where it must.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_HEADER_SIZE = 12
_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPCODE_BITS = 0x78  # of the third header byte
_TYPE_CLASS = struct.Struct("!HH")
_OPT_FIXED = struct.Struct("!HHIH")  # type, payload size, extended rcode/version/flags, rdlen
_OPTION_HEADER = struct.Struct("!HH")
_OPT = 41
_COOKIE = 10
_DO = 0x8000
# RFC 7873 §4: an 8-byte client cookie, alone or followed by an 8 to 32-byte server cookie.
_COOKIE_LENGTHS = frozenset((8, *range(16, 41)))
# RD (first flags byte) and CD (second) are copied into the response; the key ignores them.
# Each flags byte looked up as the one-byte string it becomes in a key, RD or CD cleared.
_WITHOUT_RD = tuple(bytes((value & 0xFE,)) for value in range(256))
_WITHOUT_CD = tuple(bytes((value & 0xEF,)) for value in range(256))


class Shape(NamedTuple):
    """A query reduced to what its answer depends on.

    ``key`` holds every byte of the query that can change the answer, except the ID, RD, CD,
    the letter case of the name and the contents of well-formed cookies, none of which can:
    two queries with one key get the same answer once those are copied over. ``qname`` is the
    question name in lower case (uncompressed wire), ``qname_end`` where the name ends in the
    query. ``edns`` is -1 without an OPT record, else its version. ``plain_options`` says the
    OPT carries nothing but cookies, which the server ignores.
    """

    key: bytes
    qname: bytes
    qname_end: int
    qtype: int
    qclass: int
    edns: int
    payload: int
    dnssec_ok: bool
    plain_options: bool


# A NamedTuple's own constructor is Python code taking keywords: three times slower than
# making the tuple directly, on a path that runs for every query the exact cache misses.
_new_shape = tuple.__new__


def read_shape(wire: bytes) -> Shape | None:
    """The shape of ``wire``, or ``None`` when it is not an ordinary single-question query."""
    size = len(wire)
    if size < _HEADER_SIZE + 5 or wire[2] & _OPCODE_BITS:
        return None
    counts = wire[4:12]
    if counts == _COUNTS_PLAIN:
        with_opt = False
    elif counts == _COUNTS_EDNS:
        with_opt = True
    else:
        return None
    position = _HEADER_SIZE
    while (length := wire[position]) != 0:
        if length > 63:  # a compression pointer or a reserved label type
            return None
        position += length + 1
        if position >= size:
            return None
    qname_end = position + 1
    question_end = qname_end + 4
    if qname_end - _HEADER_SIZE > 255 or question_end > size:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(wire, qname_end)
    qname = wire[_HEADER_SIZE:qname_end].lower()
    flags = _WITHOUT_RD[wire[2]] + _WITHOUT_CD[wire[3]]
    if not with_opt:
        if question_end != size:
            return None
        key = flags + qname + wire[qname_end:question_end]
        return _new_shape(Shape, (key, qname, qname_end, qtype, qclass, -1, 0, False, True))
    options_start = question_end + 1 + _OPT_FIXED.size
    if options_start > size or wire[question_end] != 0:
        return None
    rtype, payload, ttl, rdlength = _OPT_FIXED.unpack_from(wire, question_end + 1)
    if rtype != _OPT or options_start + rdlength != size:
        return None
    options = _meaningful_options(wire, options_start, size)
    if options is None:
        return None
    key = flags + qname + wire[qname_end : question_end + 9] + options
    edns = ttl >> 16 & 0xFF
    plain = not options and ttl >> 24 == 0
    dnssec_ok = bool(ttl & _DO)
    return _new_shape(
        Shape, (key, qname, qname_end, qtype, qclass, edns, payload, dnssec_ok, plain)
    )


def _meaningful_options(wire: bytes, position: int, end: int) -> bytes | None:
    """The OPT's options less well-formed cookies; ``None`` when they do not add up to the
    record's length (dnspython's path answers those with FORMERR)."""
    kept = []
    while position < end:
        if position + 4 > end:
            return None
        code, length = _OPTION_HEADER.unpack_from(wire, position)
        following = position + 4 + length
        if following > end:
            return None
        if code != _COOKIE or length not in _COOKIE_LENGTHS:
            kept.append(wire[position:following])
        position = following
    return b"".join(kept)
