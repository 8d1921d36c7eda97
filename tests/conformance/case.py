"""One question of the conformance suite, as data: what to send and over which transport.

A case describes the query, not the expected answer: the expected answer is whatever Knot DNS
says, corrected only by the rules in ``accepted.py``. Keeping cases as plain frozen data lets
the table in ``cases.py`` stay readable and lets a case id say exactly what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.opcode
import dns.rdataclass
import dns.rdatatype

UDP = "udp"
TCP = "tcp"


@dataclass(frozen=True)
class Case:
    """A query and its transport.

    ``edns`` is the EDNS version to send, or None for a query without OPT. ``raw`` names a
    hand-built wire format in ``wire.RAW_BUILDERS`` for what dnspython will not build
    (two OPTs, QR=1, two questions...); the other fields still describe the question in it.
    """

    category: str
    qname: str
    qtype: str | int = "A"
    qclass: str | int = "IN"
    transport: str = UDP
    edns: int | None = 0
    payload: int = 1232
    do: bool = False
    rd: bool = False
    cd: bool = False
    ad: bool = False
    opcode: int = dns.opcode.QUERY
    ednsflags: int = 0
    options: tuple[tuple[int, bytes], ...] = ()
    raw: str | None = None
    profile: str = "hidden"
    """Which server pair answers: "hidden" (no identity, version or NSID configured, the
    default of both) or "identity" (both configured with the same identity, version, NSID)."""
    note: str = ""

    @property
    def rdtype(self) -> int:
        return dns.rdatatype.from_text(self.qtype) if isinstance(self.qtype, str) else self.qtype

    @property
    def rdclass(self) -> int:
        if isinstance(self.qclass, str):
            return dns.rdataclass.from_text(self.qclass)
        return self.qclass

    @property
    def id(self) -> str:
        """A readable, unique test id: category, question, then whatever differs from default."""
        qtype = dns.rdatatype.to_text(self.rdtype)
        qclass = dns.rdataclass.to_text(self.rdclass)
        qname = self.qname if len(self.qname) <= 40 else f"{self.qname[:18]}..{self.qname[-18:]}"
        parts = [f"{self.category}:{qname}/{qtype}/{qclass}", self.transport]
        parts.append("noedns" if self.edns is None else f"edns{self.edns}")
        if self.edns is not None and self.payload != 1232:
            parts.append(f"bufsize{self.payload}")
        for flag in ("do", "rd", "cd", "ad"):
            if getattr(self, flag):
                parts.append(flag)
        if self.opcode != dns.opcode.QUERY:
            parts.append(f"opcode{self.opcode}")
        if self.ednsflags:
            parts.append(f"ednsflags{self.ednsflags:#06x}")
        parts.extend(f"opt{code}-{data.hex() or 'empty'}" for code, data in self.options)
        if self.raw:
            parts.append(f"raw-{self.raw}")
        if self.profile != "hidden":
            parts.append(self.profile)
        return " ".join(parts)
