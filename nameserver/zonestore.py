"""A zone compiled into bytes: what the server keeps in memory instead of dnspython objects.

dnspython keeps a ``Node``, an ``Rdataset`` per type and an ``Rdata`` per record: about 700
bytes a record, most of a million-record zone's memory. Here each owner name is one dictionary
entry, its lower-case wire name to one ``bytes`` value holding its rdatasets in uncompressed
wire form; lookups materialise dnspython nodes from it only for the names they touch. Plain
dicts, tuples and bytes also make the compiled zone cheap to share copy-on-write between forked
workers and fast to save and load with :mod:`marshal`.

The facts a lookup needs in O(1) (which names exist, zone cuts, DNAMEs, NSEC and NSEC3 owners)
are collected while compiling, so that building an index from a compiled zone is cheap.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

#: Changes whenever the encoding below does, so that saved compiled zones are not misread.
FORMAT = 1

IN = dns.rdataclass.IN
_RRSIG = dns.rdatatype.RRSIG
_NSEC3 = dns.rdatatype.NSEC3
# An rdataset: type, covered type (RRSIG only), TTL, number of rdata; each rdata: its length.
_HEADER = struct.Struct("!HHIH")
_LENGTH = struct.Struct("!H")
_SINGLE = struct.Struct("!HHIHH")  # the header of an rdataset of one rdata, and its length
# RFC 2181 §10.1 and RFC 4035 §2.5: beside a CNAME only DNSSEC data may live; dnspython's rule.
_NEUTRAL = frozenset({dns.rdatatype.NSEC, _NSEC3, dns.rdatatype.KEY})
# Types of which an owner has one record at most (SOA, CNAME, DNAME, NSEC...).
_SINGLETONS = frozenset(t for t in dns.rdatatype.RdataType if dns.rdatatype.is_singleton(t))

#: One rdataset while compiling: its TTL and its rdata, canonical form -> wire form.
_Open = dict[tuple[int, int], tuple[int, dict[bytes, bytes]]]


class Conflict(Exception):
    """The data breaks a rule a served zone must keep; the caller decides how to report it."""


@dataclass(frozen=True, eq=False)
class ZoneData:
    """One compiled zone; never changed once built.

    ``records`` maps each owner's lower-case wire name to its encoded rdatasets, in the order
    dnspython would hold them; ``cased`` keeps the owner as written where that differs.
    ``ents`` are the empty non-terminals; ``cuts``, ``dnames``, ``nsec`` and ``nsec3`` the keys
    of the owners of delegations, DNAMEs, NSEC records and NSEC3-only nodes.
    """

    origin: dns.name.Name
    records: dict[bytes, bytes]
    cased: dict[bytes, bytes]
    ents: tuple[bytes, ...]
    cuts: tuple[bytes, ...]
    dnames: tuple[bytes, ...]
    nsec: tuple[bytes, ...]
    nsec3: tuple[bytes, ...]
    serial: int
    count: int

    @cached_property
    def existing_wire(self) -> frozenset[bytes]:
        """Every name of the zone tree, empty non-terminals included; NSEC3 owners are not in
        the tree (RFC 5155 §7.2.8). Computed once per compiled zone, so that a reload which
        keeps the zone keeps this too."""
        return frozenset(self.records.keys() - set(self.nsec3)).union(self.ents)

    @cached_property
    def obstructions_wire(self) -> frozenset[bytes]:
        return frozenset(self.cuts + self.dnames)

    def name(self, key: bytes) -> dns.name.Name:
        """The owner name of ``key`` as the zone file wrote it."""
        return dns.name.from_wire(self.cased.get(key, key), 0)[0]

    def names(self) -> Iterator[dns.name.Name]:
        """Every owner name of the zone, NSEC3 owners included."""
        return (self.name(key) for key in self.records)

    def node(self, key: bytes) -> dns.node.Node | None:
        """A dnspython node for the owner ``key``, built afresh; ``None`` when it has no data."""
        blob = self.records.get(key)
        return None if blob is None else _Node(list(decode(blob)))

    def encoded(self, key: bytes) -> Iterator[tuple[int, int, int, list[bytes]]]:
        """The owner ``key``'s rdatasets as :func:`decode` gives them, none for a name without
        data: what the fast answers read instead of making a node."""
        return decode(self.records.get(key, b""))

    def to_marshal(self) -> tuple[Any, ...]:
        """Everything but the origin, as types :mod:`marshal` writes."""
        return (
            self.records,
            self.cased,
            self.ents,
            self.cuts,
            self.dnames,
            self.nsec,
            self.nsec3,
            self.serial,
            self.count,
        )

    @classmethod
    def from_marshal(cls, origin: dns.name.Name, saved: tuple[Any, ...]) -> ZoneData:
        """The inverse of :meth:`to_marshal`; raises ``TypeError`` or ``ValueError`` on data
        of another shape."""
        records, cased, ents, cuts, dnames, nsec, nsec3, serial, count = saved
        if not (isinstance(records, dict) and isinstance(cased, dict)):
            raise TypeError("not a compiled zone")
        if not all(isinstance(part, tuple) for part in (ents, cuts, dnames, nsec, nsec3)):
            raise TypeError("not a compiled zone")
        return cls(origin, records, cased, ents, cuts, dnames, nsec, nsec3, int(serial), int(count))

    @classmethod
    def from_zone(cls, zone: dns.zone.Zone) -> ZoneData:
        """Compile a zone dnspython has read and checked (``relativize=False``)."""
        assert zone.origin is not None
        builder = Builder(zone.origin)
        for name, node in zone.items():
            owner = name.to_wire()
            for rdataset in node:
                for rdata in rdataset:
                    builder.add(
                        owner,
                        rdataset.rdtype,
                        rdataset.covers,
                        rdataset.ttl,
                        rdata.to_wire(),
                        rdata.to_digestable(),
                    )
        return builder.finish()


class _Node(dns.node.Node):
    """A read-only node that makes each rdataset from wire form when it is first asked for.

    A lookup asks for one type of a name, and making an ``Rdata`` costs tens of microseconds:
    the other rdatasets of the name are only made for ANY and RRSIG questions.
    """

    __slots__ = ("_encoded", "_made")

    def __init__(self, encoded: list[tuple[int, int, int, list[bytes]]]) -> None:
        self._encoded = encoded
        self._made: dict[int, dns.rdataset.Rdataset] = {}

    @property  # type: ignore[override]
    def rdatasets(self) -> list[dns.rdataset.Rdataset]:
        return [self._make(index) for index in range(len(self._encoded))]

    def find_rdataset(
        self,
        rdclass: int,
        rdtype: int,
        covers: int = dns.rdatatype.NONE,
        create: bool = False,
    ) -> dns.rdataset.Rdataset:
        if create:
            raise TypeError("a compiled zone's node is read-only")
        if rdclass == IN:
            for index, (found, found_covers, _, _) in enumerate(self._encoded):
                if found == rdtype and found_covers == covers:
                    return self._make(index)
        raise KeyError

    def _make(self, index: int) -> dns.rdataset.Rdataset:
        rdataset = self._made.get(index)
        if rdataset is None:
            rdtype, covers, ttl, wires = self._encoded[index]
            rdataset = dns.rdataset.Rdataset(IN, rdtype, covers)
            for wire in wires:
                rdataset.add(dns.rdata.from_wire(IN, rdtype, wire, 0, len(wire)), ttl)
            self._made[index] = rdataset
        return rdataset


def decode(blob: bytes) -> Iterator[tuple[int, int, int, list[bytes]]]:
    """The rdatasets of one owner: type, covered type, TTL and the rdata in wire form."""
    offset = 0
    while offset < len(blob):
        rdtype, covers, ttl, count = _HEADER.unpack_from(blob, offset)
        offset += _HEADER.size
        wires = []
        for _ in range(count):
            (length,) = _LENGTH.unpack_from(blob, offset)
            offset += _LENGTH.size
            wires.append(blob[offset : offset + length])
            offset += length
        yield rdtype, covers, ttl, wires


class Builder:
    """Collects records, one owner at a time, into a :class:`ZoneData`.

    Zone files group an owner's records, so only the owner being read is kept as Python
    objects; an owner that comes back later is decoded and reopened. It merges records as
    dnspython's zone does: duplicates (by canonical form) once, the lowest TTL for the RRset,
    and an RRset that grows moves to the end of its node.

    :raises Conflict: on a second, different SOA, CNAME or other singleton; a CNAME beside
        other data; an SOA away from the apex; no SOA or NS at the apex.
    """

    def __init__(self, origin: dns.name.Name) -> None:
        self._origin = origin
        self._apex = origin.to_wire().lower()
        self._records: dict[bytes, bytes] = {}
        self._cased: dict[bytes, bytes] = {}
        self._facts: dict[str, set[bytes]] = {kind: set() for kind in (*_FACTS, "nsec3")}
        self._count = 0
        self._key: bytes | None = None
        self._open: _Open = {}

    def add(
        self, owner: bytes, rdtype: int, covers: int, ttl: int, wire: bytes, canonical: bytes
    ) -> None:
        """One record; ``owner`` as written, in wire form; ``canonical`` decides duplicates."""
        key = owner.lower()
        if key != self._key:
            self._switch(owner, key)
        entry = self._open.pop((rdtype, covers), None)
        if entry is None:
            entry = (ttl, {})
        elif ttl < entry[0]:
            entry = (ttl, entry[1])
        rdatas = entry[1]
        singleton = rdtype in _SINGLETONS
        if rdtype == dns.rdatatype.SOA and key != self._apex:
            raise Conflict("an SOA record away from the apex")
        if canonical in rdatas:
            if singleton:
                # dnspython keeps the last of equal singletons, the first of other equal rdata.
                rdatas[canonical] = wire
        elif singleton and rdatas:
            raise Conflict(f"a second {dns.rdatatype.to_text(rdtype)} record")
        else:
            rdatas[canonical] = wire
            self._count += 1
        self._open[(rdtype, covers)] = entry

    def finish(self) -> ZoneData:
        self._switch(b"", b"")
        apex = self._records.get(self._apex)
        types = set() if apex is None else {rdtype for rdtype, _, _, _ in decode(apex)}
        if dns.rdatatype.SOA not in types or dns.rdatatype.NS not in types:
            raise Conflict("no SOA or no NS record at the apex")
        soa = next(wires[0] for rdtype, _, _, wires in decode(apex) if rdtype == dns.rdatatype.SOA)
        # The serial is the first of the five 32-bit numbers that end an SOA's rdata.
        (serial,) = struct.unpack_from("!I", soa, len(soa) - 20)
        facts = {kind: tuple(sorted(keys)) for kind, keys in self._facts.items()}
        return ZoneData(
            self._origin,
            self._records,
            self._cased,
            self._empty_non_terminals(),
            facts["cuts"],
            facts["dnames"],
            facts["nsec"],
            facts["nsec3"],
            serial,
            self._count,
        )

    def _switch(self, owner: bytes, key: bytes) -> None:
        """Close the owner being built and open ``key``, reopening it if it was seen before."""
        if self._key is not None:
            self._close(self._key)
        self._key = key
        blob = self._records.get(key)
        if blob is not None:
            self._open = {
                (rdtype, covers): (ttl, {_canonical(rdtype, wire): wire for wire in wires})
                for rdtype, covers, ttl, wires in decode(blob)
            }
        else:
            self._open = {}
            if owner != key:
                self._cased[key] = owner

    def _close(self, key: bytes) -> None:
        parts = []
        covered = set()
        for (rdtype, covers), (ttl, rdatas) in self._open.items():
            covered.add(covers if rdtype == _RRSIG else rdtype)
            if len(rdatas) == 1:  # most RRsets: header and length in one call
                [wire] = rdatas.values()
                parts += (_SINGLE.pack(rdtype, covers, ttl, 1, len(wire)), wire)
                continue
            parts.append(_HEADER.pack(rdtype, covers, ttl, len(rdatas)))
            for wire in rdatas.values():
                parts += (_LENGTH.pack(len(wire)), wire)
        self._records[key] = b"".join(parts)
        if dns.rdatatype.CNAME in covered and covered - _NEUTRAL - {dns.rdatatype.CNAME}:
            raise Conflict("a CNAME and other data")
        nsec3 = self._facts["nsec3"]
        if covered == {_NSEC3}:
            nsec3.add(key)
            return
        nsec3.discard(key)  # an NSEC3 owner that other data joined
        if _FACT_KEYS.isdisjoint(self._open):
            return
        # An owner that is no longer NSEC3-only never becomes it again: facts only grow.
        for kind, rdtype in _FACTS.items():
            if (rdtype, 0) in self._open and (kind != "cuts" or key != self._apex):
                self._facts[kind].add(key)

    def _empty_non_terminals(self) -> tuple[bytes, ...]:
        """Names with no data of their own between the apex and an owner below them."""
        nsec3 = self._facts["nsec3"]
        ents: set[bytes] = set()
        for key in self._records:
            if key in nsec3:
                continue
            while key != self._apex:
                key = key[key[0] + 1 :]
                if key in ents or (key in self._records and key not in nsec3):
                    break
                if key != self._apex:
                    ents.add(key)
        return tuple(sorted(ents))


#: The owners a lookup must find at once, by the type that puts them there.
_FACTS = {"cuts": dns.rdatatype.NS, "dnames": dns.rdatatype.DNAME, "nsec": dns.rdatatype.NSEC}
_FACT_KEYS = frozenset((rdtype, 0) for rdtype in _FACTS.values())


def _canonical(rdtype: int, wire: bytes) -> bytes:
    """What dnspython compares rdata by (RFC 4034 §6.2: names in lower case for most types)."""
    return dns.rdata.from_wire(IN, rdtype, wire, 0, len(wire)).to_digestable()
