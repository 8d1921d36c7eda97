"""The authoritative lookup of RFC 1034 §4.3.2 over one hosted zone.

Pure: a zone and a question in, the sections of the answer out; rendering, EDNS and truncation
belong to the responder. Names in the zone are absolute (zones are loaded unrelativized), so
rdata can be copied into a response as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

IN = dns.rdataclass.IN
ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
# Types whose targets get their addresses added (RFC 1034 §3.6.2, RFC 2782).
_TARGET_TYPES = (dns.rdatatype.NS, dns.rdatatype.MX, dns.rdatatype.SRV)
# A CNAME chain longer than this inside one zone is a loop or an abuse; stop with what we have.
MAX_CHAIN = 16


@dataclass
class Result:
    """The sections of an answer, before rendering.

    ``required_additional`` counts the leading additional RRsets that must reach the client or
    the reply is truncated: in-domain glue of a referral (RFC 9471). The rest are a courtesy
    and are dropped first when space runs out.
    """

    rcode: int = dns.rcode.NOERROR
    authoritative: bool = True
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    required_additional: int = 0


class ZoneIndex:
    """One zone with the facts a lookup needs that dnspython's ``Zone`` cannot give in O(1):
    which names exist (empty non-terminals included, so they answer NODATA, not NXDOMAIN) and
    where the zone cuts are."""

    def __init__(self, zone: dns.zone.Zone) -> None:
        self.zone = zone
        self.origin: dns.name.Name = zone.origin
        existing: set[dns.name.Name] = set()
        cuts: set[dns.name.Name] = set()
        for name, node in zone.items():
            owner = name.derelativize(self.origin)
            if owner != self.origin and node.get_rdataset(IN, dns.rdatatype.NS) is not None:
                cuts.add(owner)
            while owner not in existing and owner != self.origin:
                existing.add(owner)
                owner = owner.parent()
        existing.add(self.origin)
        self.existing = frozenset(existing)
        self.cuts = frozenset(cuts)
        soa = zone.get_rdataset(self.origin, dns.rdatatype.SOA)
        assert soa is not None, "zones are checked for an apex SOA when loaded"
        self.negative_soa = _rrset(self.origin, soa, ttl=min(soa.ttl, soa[0].minimum))

    def node(self, name: dns.name.Name) -> dns.node.Node | None:
        return self.zone.get_node(name)

    def rdataset(self, name: dns.name.Name, rdtype: int) -> dns.rdataset.Rdataset | None:
        node = self.zone.get_node(name)
        return None if node is None else node.get_rdataset(IN, rdtype)

    def cut_above(self, name: dns.name.Name, qtype: int) -> dns.name.Name | None:
        """The highest zone cut at or above ``name``; DS at a cut itself belongs to us."""
        if not self.cuts:
            return None
        for depth in range(len(self.origin) + 1, len(name) + 1):
            candidate = name.split(depth)[1]
            if candidate in self.cuts and not (candidate == name and qtype == dns.rdatatype.DS):
                return candidate
        return None


def lookup(index: ZoneIndex, qname: dns.name.Name, qtype: int) -> Result:
    """Answer ``qname``/``qtype`` from one zone, following CNAMEs while they stay in it."""
    result = Result()
    name = qname
    seen: set[dns.name.Name] = set()
    while len(seen) < MAX_CHAIN and name not in seen:
        seen.add(name)
        cut = index.cut_above(name, qtype)
        if cut is not None:
            _refer(index, cut, result)
            return result
        node, owner = _find_node(index, name)
        if node is None:
            if name not in index.existing:
                result.rcode = dns.rcode.NXDOMAIN
            result.authority.append(index.negative_soa)
            return result
        wanted = _matching(node, qtype)
        if wanted:
            result.answer.extend(_rrset(owner, rdataset) for rdataset in wanted)
            result.additional.extend(_target_addresses(index, wanted))
            return result
        cname = node.get_rdataset(IN, dns.rdatatype.CNAME)
        if cname is None:
            result.authority.append(index.negative_soa)
            return result
        result.answer.append(_rrset(owner, cname))
        name = cname[0].target
        if not name.is_subdomain(index.origin):
            return result
    return result


def _find_node(index: ZoneIndex, name: dns.name.Name) -> tuple[dns.node.Node | None, dns.name.Name]:
    """The node for ``name``, or the wildcard that synthesizes it (RFC 4592 §3.3.1)."""
    node = index.node(name)
    if node is not None or name in index.existing:
        return node, name
    encloser = name.parent()
    while encloser not in index.existing:
        encloser = encloser.parent()
    return index.node(dns.name.Name((b"*", *encloser.labels))), name


def _matching(node: dns.node.Node, qtype: int) -> list[dns.rdataset.Rdataset]:
    if qtype == dns.rdatatype.ANY:
        return list(node.rdatasets)
    rdataset = node.get_rdataset(IN, qtype)
    return [] if rdataset is None else [rdataset]


def _refer(index: ZoneIndex, cut: dns.name.Name, result: Result) -> None:
    """A referral: the child's NS in authority, glue below the cut required (RFC 9471)."""
    ns = index.rdataset(cut, dns.rdatatype.NS)
    assert ns is not None
    result.authoritative = bool(result.answer)
    result.authority.append(_rrset(cut, ns))
    glue = list(_target_addresses(index, [ns], below=cut))
    result.additional.extend(glue)
    result.required_additional = len(glue)
    result.additional.extend(
        rrset for rrset in _target_addresses(index, [ns]) if not rrset.name.is_subdomain(cut)
    )


def _target_addresses(
    index: ZoneIndex,
    rdatasets: Iterable[dns.rdataset.Rdataset],
    below: dns.name.Name | None = None,
) -> Iterator[dns.rrset.RRset]:
    """A and AAAA of the in-zone targets of NS, MX and SRV records, once each."""
    seen: set[dns.name.Name] = set()
    for rdataset in rdatasets:
        if rdataset.rdtype not in _TARGET_TYPES:
            continue
        for rdata in rdataset:
            target = rdata.exchange if rdataset.rdtype == dns.rdatatype.MX else rdata.target
            if target in seen or not target.is_subdomain(below or index.origin):
                continue
            seen.add(target)
            for rdtype in ADDRESS_TYPES:
                addresses = index.rdataset(target, rdtype)
                if addresses is not None:
                    yield _rrset(target, addresses)


def _rrset(
    owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, ttl: int | None = None
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    rrset.update(rdataset)
    if ttl is not None:
        rrset.ttl = ttl
    return rrset
