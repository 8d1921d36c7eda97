"""The authoritative lookup of RFC 1034 §4.3.2, with wildcards (RFC 4592), DNAME (RFC 6672),
negative answers (RFC 2308) and, for pre-signed zones, DNSSEC records (RFC 4035, RFC 5155).

Pure: zones and a question in, the sections of the answer out; header rules, EDNS and rendering
belong to the responder. Zones are loaded unrelativized, so rdata are copied out as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME

from nameserver.denial import Chain, Nsec3Chain, NsecChain, wildcard
from nameserver.zonestore import ZoneData

IN = dns.rdataclass.IN
RRSIG = dns.rdatatype.RRSIG
ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
# Types whose targets get their addresses added (RFC 1034 §3.6.2, RFC 2782).
_TARGET_TYPES = (dns.rdatatype.NS, dns.rdatatype.MX, dns.rdatatype.SRV)
# A CNAME/DNAME chain longer than this is a loop or an abuse; stop with what we have.
MAX_CHAIN = 16
# Nodes a worker keeps materialised per zone, the most recently asked: about 1.5 kB each.
MATERIALISED_NODES = 8192


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


@dataclass(frozen=True)
class Question:
    """What the lookup needs to know of a query besides the name it is following.

    ``dnssec`` is the DO bit. ``minimal_any`` asks for RFC 8482's one-RRset answer to ANY,
    which the responder wants over UDP only.
    """

    qtype: int
    dnssec: bool = False
    minimal_any: bool = False


class ZoneIndex:
    """One compiled zone with what a lookup needs in O(1), and dnspython nodes on demand.

    ``existing`` holds every name of the zone tree, empty non-terminals included (they answer
    NODATA, not NXDOMAIN). NSEC3 records live outside that tree (RFC 5155 §7.2.8): their
    hashed owners are not names a client can find. Building an index takes only what the
    compile left ready, so a generation of workers gets one at once and the forked workers
    share it; each materialises the nodes it answers from, keeping the most recent ones.
    """

    def __init__(self, data: ZoneData) -> None:
        self.data = data
        self.origin: dns.name.Name = data.origin
        # The facts as lower-case wire names, for the responder's fast path, which answers
        # from the query's bytes without making dnspython names.
        self.existing_wire = data.existing_wire
        self.obstructions_wire = data.obstructions_wire
        self.existing = _WireNames(self.existing_wire)
        self.cuts = frozenset(data.name(key) for key in data.cuts)
        self.dnames = frozenset(data.name(key) for key in data.dnames)
        self._nodes: dict[bytes, dns.node.Node] = {}
        soa = self.rdataset(self.origin, dns.rdatatype.SOA)
        assert soa is not None, "zones are checked for an apex SOA when loaded"
        self.negative_ttl = min(soa.ttl, soa[0].minimum)
        self.chain = self._chain()

    def _chain(self) -> Chain | None:
        param = self.rdataset(self.origin, dns.rdatatype.NSEC3PARAM)
        data = self.data
        if param is not None and data.nsec3:
            return Nsec3Chain(self.origin, param[0], [data.name(key) for key in data.nsec3])
        return NsecChain([data.name(key) for key in data.nsec]) if data.nsec else None

    def _node(self, key: bytes) -> dns.node.Node | None:
        """The node of the owner ``key``, materialised once and kept while it is recent."""
        node = self._nodes.get(key)
        if node is None:
            node = self.data.node(key)
            if node is None:
                return None
            if len(self._nodes) >= MATERIALISED_NODES:
                del self._nodes[next(iter(self._nodes))]
            self._nodes[key] = node
        return node

    def node(self, name: dns.name.Name) -> dns.node.Node | None:
        key = lower_wire(name)
        return self._node(key) if key in self.existing_wire else None

    def rdataset(self, name: dns.name.Name, rdtype: int) -> dns.rdataset.Rdataset | None:
        # Any owner, NSEC3 owners too, for the proofs that name them.
        node = self._node(lower_wire(name))
        return None if node is None else node.get_rdataset(IN, rdtype)

    def signed(
        self,
        owner: dns.name.Name,
        rdataset: dns.rdataset.Rdataset,
        dnssec: bool,
        source: dns.name.Name | None = None,
        ttl: int | None = None,
    ) -> list[dns.rrset.RRset]:
        """``rdataset`` as an RRset named ``owner``, with its RRSIG when the client asked.

        ``source`` is where the data really lives, when ``owner`` is synthesized from a wildcard.
        """
        rrsets = [_rrset(owner, rdataset, ttl)]
        if dnssec:
            node = self._node(lower_wire(source or owner))
            signatures = None if node is None else node.get_rdataset(IN, RRSIG, rdataset.rdtype)
            if signatures is not None:
                rrsets.append(_rrset(owner, signatures, ttl))
        return rrsets

    def closest_encloser(self, name: dns.name.Name) -> dns.name.Name:
        while name not in self.existing:
            name = name.parent()
        return name

    def obstruction(
        self, name: dns.name.Name, qtype: int
    ) -> tuple[str, dns.name.Name] | tuple[None, None]:
        """The zone cut or DNAME on the way from the apex down to ``name``, the highest first.

        A cut at ``name`` itself does not apply to DS, which the parent side answers; a DNAME
        applies to the names below its owner only (RFC 6672 §2.3).
        """
        if not self.cuts and not self.dnames:
            return None, None
        for depth in range(len(self.origin), len(name) + 1):
            candidate = name.split(depth)[1]
            if candidate in self.cuts and not (candidate == name and qtype == dns.rdatatype.DS):
                return "cut", candidate
            if candidate in self.dnames and candidate != name:
                return "dname", candidate
        return None, None


def lookup(index: ZoneIndex, qname: dns.name.Name, question: Question) -> Result:
    """Answer ``qname`` from one zone, following CNAMEs and DNAMEs while they stay in it."""
    return _Lookup(index, question).run(qname)


class _Lookup:
    """One walk through RFC 1034 §4.3.2 step 3, repeated for each name of a CNAME chain."""

    def __init__(self, index: ZoneIndex, question: Question) -> None:
        self.index = index
        self.question = question
        self.result = Result()

    def run(self, qname: dns.name.Name) -> Result:
        name: dns.name.Name | None = qname
        seen: set[dns.name.Name] = set()
        while name is not None and len(seen) < MAX_CHAIN and name not in seen:
            seen.add(name)
            name = self._step(name)
        return self.result

    def _step(self, name: dns.name.Name) -> dns.name.Name | None:
        """Add what ``name`` contributes; the next name to follow, if any."""
        index = self.index
        kind, owner = index.obstruction(name, self.question.qtype)
        if kind == "cut":
            self._refer(owner)
            return None
        if kind == "dname":
            return self._dname(name, owner)
        node = index.node(name)
        if node is not None:
            return self._at_node(name, node, name)
        if name in index.existing:
            self._negative(nodata=name)
            return None
        encloser = index.closest_encloser(name)
        source = wildcard(encloser)
        node = index.node(source)
        if node is None:
            self.result.rcode = dns.rcode.NXDOMAIN
            self._negative(nxdomain=(name, encloser))
            return None
        return self._at_node(name, node, source, encloser)

    def _at_node(
        self,
        name: dns.name.Name,
        node: dns.node.Node,
        source: dns.name.Name,
        encloser: dns.name.Name | None = None,
    ) -> dns.name.Name | None:
        """Answer from an existing node, or from the wildcard ``source`` that stands for it."""
        wanted = self._matching(node)
        cname = None if wanted else node.get_rdataset(IN, dns.rdatatype.CNAME)
        if not wanted and cname is None:
            if encloser is None:
                self._negative(nodata=name)
            else:
                self._negative(wildcard_nodata=(name, encloser))
            return None
        for rdataset in wanted or [cname]:
            self.result.answer.extend(self._signed(name, rdataset, source))
        if encloser is not None:
            self._prove(lambda chain: chain.wildcard_answer(name, encloser))
        if wanted:
            self.result.additional.extend(self._addresses(wanted))
            return None
        return self._follow(cname[0].target)

    def _follow(self, target: dns.name.Name) -> dns.name.Name | None:
        """Where a CNAME leads next: nowhere when it was asked for, or leaves the zone."""
        if self.question.qtype == dns.rdatatype.CNAME:
            return None
        return target if target.is_subdomain(self.index.origin) else None

    def _matching(self, node: dns.node.Node) -> list[dns.rdataset.Rdataset]:
        qtype = self.question.qtype
        if qtype == dns.rdatatype.ANY:
            # Signatures come with the RRsets they sign, when the client asked for them.
            every = sorted(
                (rdataset for rdataset in node.rdatasets if rdataset.rdtype != RRSIG),
                key=lambda rdataset: rdataset.rdtype,
            )
            # RFC 8482 §4.1: one RRset of the node stands for all; we take the lowest type.
            return every[:1] if self.question.minimal_any else every
        if qtype == RRSIG:
            return [rdataset for rdataset in node.rdatasets if rdataset.rdtype == RRSIG]
        rdataset = node.get_rdataset(IN, qtype)
        return [] if rdataset is None else [rdataset]

    def _signed(
        self, owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, source: dns.name.Name
    ) -> list[dns.rrset.RRset]:
        if rdataset.rdtype == RRSIG:
            return [_rrset(owner, rdataset)]
        return self.index.signed(owner, rdataset, self.question.dnssec, source)

    def _dname(self, name: dns.name.Name, owner: dns.name.Name) -> dns.name.Name | None:
        """RFC 6672 §2.2: the DNAME, a CNAME synthesized from it, then the new name."""
        dname = self.index.rdataset(owner, dns.rdatatype.DNAME)
        assert dname is not None
        self.result.answer.extend(self._signed(owner, dname, owner))
        try:
            target = name.relativize(owner).concatenate(dname[0].target)
        except dns.name.NameTooLong:
            self.result.rcode = dns.rcode.YXDOMAIN
            return None
        synthesized = CNAME(IN, dns.rdatatype.CNAME, target)
        self.result.answer.append(dns.rrset.from_rdata(name, dname.ttl, synthesized))
        return self._follow(target)

    def _refer(self, cut: dns.name.Name) -> None:
        """A referral: the child's NS, the DS or the proof there is none, and the glue."""
        index = self.index
        ns = index.rdataset(cut, dns.rdatatype.NS)
        assert ns is not None
        result = self.result
        result.authoritative = bool(result.answer)
        result.authority.append(_rrset(cut, ns))
        if self.question.dnssec and index.chain is not None:
            ds = index.rdataset(cut, dns.rdatatype.DS)
            if ds is not None:
                result.authority.extend(index.signed(cut, ds, True))
            else:
                self._prove(lambda chain: chain.nodata(cut))
        glue = list(self._addresses([ns], below=cut))
        result.additional.extend(glue)
        result.required_additional = len(glue)
        result.additional.extend(
            rrset for rrset in self._addresses([ns]) if not rrset.name.is_subdomain(cut)
        )

    def _negative(
        self,
        nodata: dns.name.Name | None = None,
        nxdomain: tuple[dns.name.Name, dns.name.Name] | None = None,
        wildcard_nodata: tuple[dns.name.Name, dns.name.Name] | None = None,
    ) -> None:
        """The SOA (RFC 2308 §3: TTL = min(SOA TTL, MINIMUM)) and, when signed, the proof."""
        index = self.index
        soa = index.rdataset(index.origin, dns.rdatatype.SOA)
        assert soa is not None
        self.result.authority.extend(
            index.signed(index.origin, soa, self.question.dnssec, ttl=index.negative_ttl)
        )
        if nodata is not None:
            self._prove(lambda chain: chain.nodata(nodata))
        elif nxdomain is not None:
            self._prove(lambda chain: chain.nxdomain(*nxdomain))
        elif wildcard_nodata is not None:
            self._prove(lambda chain: chain.wildcard_nodata(*wildcard_nodata))

    def _prove(self, proof: Callable[[Chain], list[dns.name.Name]]) -> None:
        """Add NSEC or NSEC3 records when the client wants DNSSEC and the zone is signed."""
        chain = self.index.chain
        if not self.question.dnssec or chain is None:
            return
        present = {(rrset.name, rrset.rdtype, rrset.covers) for rrset in self.result.authority}
        for owner in proof(chain):
            records = self.index.rdataset(owner, chain.rdtype)
            if records is None or (owner, chain.rdtype, 0) in present:
                continue
            self.result.authority.extend(self.index.signed(owner, records, True))

    def _addresses(
        self, rdatasets: Iterable[dns.rdataset.Rdataset], below: dns.name.Name | None = None
    ) -> Iterator[dns.rrset.RRset]:
        """A and AAAA of the in-zone targets of NS, MX and SRV records, once each."""
        index = self.index
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
                        # Glue has no signature, so asking for one costs nothing there.
                        yield from index.signed(target, addresses, self.question.dnssec)


class _WireNames:
    """A set of lower-case wire names that answers ``name in`` for dnspython names."""

    def __init__(self, wires: frozenset[bytes]) -> None:
        self._wires = wires

    def __contains__(self, name: object) -> bool:
        return isinstance(name, dns.name.Name) and lower_wire(name) in self._wires


def lower_wire(name: dns.name.Name) -> bytes:
    """A name as uncompressed wire bytes in lower case, as a query's are after ``.lower()``."""
    return name.to_wire().lower()


def _rrset(
    owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, ttl: int | None = None
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    rrset.update(rdataset)
    if ttl is not None:
        rrset.ttl = ttl
    return rrset
