"""A reply reduced to what the comparison looks at: header, question, RRs, EDNS.

RRs become :class:`RR` values that compare equal when they mean the same: owner lower-cased,
rdata in canonical (RFC 4034 §6.2) form, which lower-cases the names inside rdata but keeps
TXT and other octets as they are. TTLs are kept: both servers serve the same files, so a TTL
difference is a real difference (the negative-answer SOA TTL of RFC 2308 §5, for instance).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

FLAG_BITS: dict[str, int] = {
    "QR": dns.flags.QR,
    "AA": dns.flags.AA,
    "TC": dns.flags.TC,
    "RD": dns.flags.RD,
    "RA": dns.flags.RA,
    "Z": 0x0040,
    "AD": dns.flags.AD,
    "CD": dns.flags.CD,
}
SECTIONS = ("answer", "authority", "additional")


@dataclass(frozen=True, order=True)
class RR:
    """One resource record, comparable across servers; ``text`` is for people only."""

    owner: str
    rdtype: int
    rdclass: int
    ttl: int
    rdata: bytes
    text: str

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RR):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def key(self) -> tuple[str, int, int, int, bytes]:
        return (self.owner, self.rdtype, self.rdclass, self.ttl, self.rdata)

    @property
    def type_name(self) -> str:
        return dns.rdatatype.to_text(self.rdtype)

    @property
    def covers(self) -> int | None:
        """The type an RRSIG covers, or None for other types."""
        if self.rdtype != dns.rdatatype.RRSIG:
            return None
        return struct.unpack_from("!H", self.rdata)[0]


@dataclass(frozen=True)
class Edns:
    """The OPT RR of a reply: version, payload, DO, the other flag bits, options in order."""

    version: int
    payload: int
    do: bool
    other_flags: int
    options: tuple[tuple[int, bytes], ...]

    def describe(self) -> str:
        options = ", ".join(f"{code}={data.hex() or '(empty)'}" for code, data in self.options)
        return (
            f"version {self.version}, payload {self.payload}, DO {int(self.do)}, "
            f"other flags {self.other_flags:#06x}, options [{options}]"
        )


@dataclass(frozen=True)
class Reply:
    """A parsed reply. ``parse_error`` is set when dnspython could not read the whole message;
    then only the header fields are meaningful."""

    wire: bytes
    query_id: int
    opcode: int
    rcode: int
    flags: frozenset[str]
    counts: tuple[int, int, int, int]
    question: tuple[str, ...]
    answer: tuple[RR, ...]
    authority: tuple[RR, ...]
    additional: tuple[RR, ...]
    edns: Edns | None
    text: str
    parse_error: str | None = None

    def section(self, name: str) -> tuple[RR, ...]:
        return getattr(self, name)

    @property
    def rcode_text(self) -> str:
        return dns.rcode.to_text(self.rcode)


def _rrs(rrsets: list[dns.rrset.RRset]) -> tuple[RR, ...]:
    rows: list[RR] = []
    for rrset in rrsets:
        owner = rrset.name.to_text().lower()
        for rdata in rrset:
            rows.append(
                RR(
                    owner=owner,
                    rdtype=rrset.rdtype,
                    rdclass=rrset.rdclass,
                    ttl=rrset.ttl,
                    rdata=rdata.to_digestable(),
                    text=f"{rrset.name} {rrset.ttl} "
                    f"{dns.rdataclass.to_text(rrset.rdclass)} "
                    f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}",
                )
            )
    return tuple(rows)


def _flags(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in FLAG_BITS.items() if bits & bit)


def _header_only(wire: bytes, error: str) -> Reply:
    query_id, bits, *counts = struct.unpack_from("!HHHHHH", wire.ljust(12, b"\0"))
    return Reply(
        wire=wire,
        query_id=query_id,
        opcode=(bits >> 11) & 0xF,
        rcode=bits & 0xF,
        flags=_flags(bits),
        counts=(counts[0], counts[1], counts[2], counts[3]),
        question=(),
        answer=(),
        authority=(),
        additional=(),
        edns=None,
        text=f"(not parsable: {error}) {wire.hex()}",
        parse_error=error,
    )


def parse(wire: bytes) -> Reply:
    """The :class:`Reply` for the bytes a server sent."""
    if len(wire) < 12:
        return _header_only(wire, f"only {len(wire)} octets")
    try:
        message = dns.message.from_wire(wire, ignore_trailing=False)
    except Exception as exc:  # any parse failure is itself a finding to report
        return _header_only(wire, repr(exc))
    counts = struct.unpack_from("!HHHH", wire, 4)
    edns = None
    if message.edns >= 0:
        edns = Edns(
            version=message.edns,
            payload=message.payload,
            do=bool(message.ednsflags & dns.flags.DO),
            other_flags=message.ednsflags & 0x7FFF,
            options=tuple((int(o.otype), o.to_wire() or b"") for o in message.options),
        )
    question = tuple(
        f"{rrset.name} {dns.rdataclass.to_text(rrset.rdclass)} "
        f"{dns.rdatatype.to_text(rrset.rdtype)}"
        for rrset in message.question
    )
    return Reply(
        wire=wire,
        query_id=message.id,
        opcode=message.opcode(),
        rcode=message.rcode(),
        flags=_flags(message.flags),
        counts=(counts[0], counts[1], counts[2], counts[3]),
        question=question,
        answer=_rrs(message.answer),
        authority=_rrs(message.authority),
        additional=_rrs(message.additional),
        edns=edns,
        text=message.to_text(),
    )
