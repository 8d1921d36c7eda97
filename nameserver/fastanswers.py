"""The plain answers rendered without dnspython: NXDOMAIN, NODATA, REFUSED, and records whose
data hold no names (A, AAAA, TXT and a few more).

Random names under a hosted zone (the "random subdomain" attack), names in no hosted zone and
names asked for types they lack rarely repeat, so no cache helps with them; the first question
for each name of a big zone, or of any zone right after a reload (which starts an empty
cache), misses it too. This renders those answers from the query's bytes, the compiled zone's
records in wire form and pre-encoded SOA parts at a few microseconds each, synthesizing from a
wildcard where one stands for the name. It answers only the plain cases (no cut or DNAME on the
way, no CNAME at the name or wildcard, no DNSSEC records to add, nothing for the additional
section) and returns ``None`` for the rest, which dnspython's path answers. The bytes are
exactly dnspython's, including its name compression, which :func:`_write_name` follows step by
step; the differential tests hold the two paths to that.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdatatype
from dns.rdtypes.ANY.SOA import SOA

from nameserver.lookup import ZoneIndex, lower_wire
from nameserver.wirequery import Shape

_IN = 1
_FLAGS_AND_COUNTS = struct.Struct("!HHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_SOA_NUMBERS = struct.Struct("!IIIII")
_POINTER = struct.Struct("!H")
_TYPE_CLASS_TTL = struct.Struct("!HHI")
_LENGTH = struct.Struct("!H")
_NONE: list[bytes] = []  # no records: shared, never changed
_QR_AA = 0x8400
_QR = 0x8000
_RD_CD = 0x0110
_NOERROR = 0
_NXDOMAIN = 3
_REFUSED = 5
_CNAME = dns.rdatatype.CNAME
_DS = dns.rdatatype.DS
# Types whose record data dnspython writes as stored (no names to compress) and that call for
# nothing in the additional section.
_VERBATIM_TYPES = frozenset(
    dns.rdatatype.from_text(name) for name in ("A", "AAAA", "TXT", "CAA", "SSHFP", "TLSA")
)
_OPT = 41
_DO = 0x8000
# Question types dnspython's path treats specially (TYPE0, OPT, transfers, TKEY, TSIG, MAILA,
# MAILB, ANY): those keep that path even for names that do not exist.
_SPECIAL_TYPES = frozenset((0, _OPT, *range(249, 256)))

# A name as the compressor walks it: every suffix's lower-case wire (the key dnspython's
# case-insensitive names amount to) with the label that starts it, in the zone's own case.
_Walk = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class _ZoneFacts:
    """What an answer from one zone needs, computed once per generation."""

    index: ZoneIndex
    negative_ttl: int
    mname: _Walk
    rname: _Walk
    numbers: bytes
    # True when the zone has no DNSSEC data to add for a DO query: no chain, no SOA RRSIG.
    unsigned: bool
    # Names below the apex that end the SOA's MNAME or RNAME (lower-case wire): the only
    # names between a query name and the apex that its compression could point to.
    shared: frozenset[bytes]


class FastAnswers:
    """The renderer of plain answers for one generation of zones."""

    def __init__(self, indexes: Iterable[ZoneIndex], udp_payload: int) -> None:
        self._zones = {lower_wire(index.origin): _facts(index) for index in indexes}
        # The OPT record of a response, by the DO bit it echoes.
        self._opt = {
            dnssec_ok: b"\0" + _RR_FIXED.pack(_OPT, udp_payload, _DO if dnssec_ok else 0, 0)
            for dnssec_ok in (False, True)
        }
        # A zone's SOA record as it follows a question, by the facts its bytes depend on; few
        # (a question's length and the odd name shared with the SOA's), never more than that.
        self._soa_records: dict[tuple, bytes] = {}

    def answer(self, wire: bytes, shape: Shape) -> tuple[bytes, int, bool] | None:
        """The answer, its rcode and whether the name exists (so that the answer is worth
        keeping: a random name seldom comes again), or ``None`` when dnspython's path must
        answer. Whether it fits the client is the caller's to check; dnspython's path
        truncates one that does not.

        The response is the query's ID, a header, the question as asked, ``records`` in the
        answer section or the zone's SOA in the authority section (none for REFUSED), and an
        OPT record when the query had one. The shape is unpacked once: a random name's whole
        answer costs a few microseconds, and each attribute read is a few percent of it.
        """
        _key, qname, qname_end, qtype, qclass, edns, _payload, dnssec_ok, plain = shape
        if not plain or edns > 0 or qclass != _IN or qtype in _SPECIAL_TYPES:
            return None
        zones = self._zones
        # The name's suffixes up to the closest hosted apex: where the lookup will look.
        suffixes = [qname]
        offset = 0
        while (facts := zones.get(suffixes[-1])) is None and qname[offset] != 0:
            offset += qname[offset] + 1
            suffixes.append(qname[offset:])
        records = _NONE
        authority = b""
        exists = False
        if facts is None:
            flags = _QR | _REFUSED
        elif facts.unsigned or not dnssec_ok:
            found = _lookup(facts.index, suffixes, qtype)
            if found is None:
                return None
            rcode, records, exists = found
            flags = _QR_AA | rcode
            if not records:
                authority = self._soa_record(facts, suffixes)
        else:
            return None
        with_opt = edns == 0
        header = _FLAGS_AND_COUNTS.pack(
            flags | (wire[2] << 8 | wire[3]) & _RD_CD, 1, len(records), bool(authority), with_opt
        )
        rendered = b"".join(
            (
                wire[:2],
                header,
                wire[12 : qname_end + 4],
                *records,
                authority,
                self._opt[dnssec_ok] if with_opt else b"",
            )
        )
        return rendered, flags & 0x0F, exists

    def _soa_record(self, facts: _ZoneFacts, suffixes: list[bytes]) -> bytes:
        """The SOA record after the question (``suffixes[0]``, up to the apex, the last),
        from the memo when it has it.

        Its bytes depend on where the apex starts in the name (the owner and every pointer
        to the apex or above are at fixed distances from it) and on which of the names
        between the query name and the apex the SOA's names end in, nothing else.
        """
        qname, origin = suffixes[0], suffixes[-1]
        shared = facts.shared
        if shared.isdisjoint(suffixes):  # as good as always: one set walk in C
            key: tuple = (origin, len(qname))
        else:
            key = (origin, len(qname), *(len(suffix) for suffix in suffixes if suffix in shared))
        record = self._soa_records.get(key)
        if record is None:
            out = bytearray(12 + len(qname) + 4)  # where the record starts in the answer
            _write_soa(out, qname, len(qname) - len(origin), facts)
            record = self._soa_records[key] = bytes(out[12 + len(qname) + 4 :])
        return record


def _lookup(
    index: ZoneIndex, suffixes: list[bytes], qtype: int
) -> tuple[int, list[bytes], bool] | None:
    """RFC 1034 §4.3.2 for the plain cases, with whether the name exists: NXDOMAIN when the
    name (``suffixes[0]``; the last is the apex) does not exist and no wildcard stands for it;
    else, from the name or the wildcard at its closest encloser (RFC 4592), NOERROR with no
    records (NODATA, RFC 2308) when there is no ``qtype`` data, NOERROR with the answer's
    records when that data is of a verbatim type. ``None`` when a zone cut, DNAME or CNAME
    makes it anything else (RFC 6672) or the records are not verbatim."""
    existing = index.existing_wire
    obstructions = index.obstructions_wire
    encloser = b""  # the closest encloser, found on the way up
    for suffix in suffixes:
        if suffix in obstructions:
            return None
        if not encloser and suffix in existing:
            encloser = suffix
    qname = suffixes[0]
    source = qname  # where the data is: the name, or the wildcard that stands for it
    if encloser != qname:
        source = b"\x01*" + encloser
        if source not in existing:
            return _NXDOMAIN, _NONE, False
        if source in obstructions or qtype == _DS:
            return None  # a wildcard delegation, or DS: dnspython's rules
    elif qtype == _DS and len(suffixes) == 1:
        return None  # a hosted parent answers DS at this apex (RFC 4035 §3.1.4.1)
    exists = source == qname
    rdatasets = list(index.data.encoded(source))
    if not exists and not rdatasets:
        return None  # a wildcard without data of its own (a non-terminal): dnspython's rules
    for rdtype, covers, ttl, datas in rdatasets:
        if rdtype == _CNAME and qtype != _CNAME:
            return None  # followed by the lookup
        if rdtype == qtype:
            if covers != 0 or qtype not in _VERBATIM_TYPES:
                return None  # data of a type dnspython renders (names, signatures, targets)
            fixed = _question_pointer(qname, 0) + _TYPE_CLASS_TTL.pack(rdtype, _IN, ttl)
            records = [fixed + _LENGTH.pack(len(data)) + data for data in datas]
            return _NOERROR, records, exists
    return _NOERROR, _NONE, exists


def _write_soa(out: bytearray, qname: bytes, origin_offset: int, facts: _ZoneFacts) -> None:
    """The zone's SOA into the authority section, compressed as dnspython compresses it."""
    compress = {}
    offset = 0
    while qname[offset] != 0:
        compress[qname[offset:]] = 12 + offset
        offset += qname[offset] + 1
    out += _question_pointer(qname, origin_offset)
    fixed_at = len(out)
    out += _RR_FIXED.pack(dns.rdatatype.SOA, _IN, facts.negative_ttl, 0)
    rdata_at = len(out)
    _write_name(out, facts.mname, compress)
    _write_name(out, facts.rname, compress)
    out += facts.numbers
    _RR_FIXED.pack_into(
        out, fixed_at, dns.rdatatype.SOA, _IN, facts.negative_ttl, len(out) - rdata_at
    )


def _question_pointer(qname: bytes, offset: int) -> bytes:
    """The owner name that is the question's from ``offset`` on, as dnspython writes it: a
    pointer into the question, or the root written out (it never points to one byte)."""
    if qname[offset] == 0:
        return b"\0"
    return _POINTER.pack(0xC000 | 12 + offset)


def _write_name(out: bytearray, walk: _Walk, compress: dict[bytes, int]) -> None:
    """dnspython's ``Name.to_wire`` with compression: a pointer to the longest suffix already
    written, after the labels before it, each of which becomes a place to point to."""
    for suffix, label in walk:
        position = compress.get(suffix)
        if position is not None:
            out += _POINTER.pack(0xC000 | position)
            return
        if len(out) <= 0x3FFF:
            compress[suffix] = len(out)
        out += label
    out += b"\0"


def _facts(index: ZoneIndex) -> _ZoneFacts:
    soa_set = index.rdataset(index.origin, dns.rdatatype.SOA)
    assert soa_set is not None, "zones are checked for an apex SOA when loaded"
    soa: SOA = soa_set[0]
    # signed() adds the SOA's RRSIG for a DO query when the zone holds one.
    signed = index.chain is not None or len(index.signed(index.origin, soa_set, True)) > 1
    numbers = _SOA_NUMBERS.pack(soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum)
    mname, rname = _walk(soa.mname), _walk(soa.rname)
    origin = lower_wire(index.origin)
    shared = frozenset(
        suffix
        for suffix, _label in mname + rname
        if suffix.endswith(origin) and len(suffix) > len(origin)
    )
    return _ZoneFacts(index, index.negative_ttl, mname, rname, numbers, not signed, shared)


def _walk(name: dns.name.Name) -> _Walk:
    labels = [label for label in name.labels if label]
    wires = [bytes((len(label),)) + label for label in labels]
    return tuple(
        (b"".join(wires[start:]).lower() + b"\0", wires[start]) for start in range(len(labels))
    )
