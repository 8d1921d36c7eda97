"""Query bytes in, response bytes out: the whole DNS behaviour of the server, with no sockets.

The server hands every batch of datagrams or TCP messages to :meth:`Responder.respond_many`,
each less its first two bytes, the ID, and sends back the replies it returns, one per query and
also less the ID, which the network layer copies from the query; ``None`` means "send nothing"
(a response, or less than a header). A reply's ID is the only part of it that depends on the
ID of its query, and a repeated query's stored reply is then exactly what is sent.
Everything the RFCs say about headers, EDNS and truncation lives here, so it is tested with
plain bytes.

dnspython parses, answers and renders every query on the plain path
(:meth:`Responder.respond_plain`), the reference for all behaviour. In front of it sit an answer
cache and a renderer of plain answers (NXDOMAIN, NODATA, REFUSED, records without names),
which give the same bytes at a small fraction of the cost; the differential tests hold them
to that.
"""

from __future__ import annotations

import enum
import struct
from operator import itemgetter

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

from nameserver.answercache import AnswerCache, Facts, Outcome, exact_entry, new_outcome
from nameserver.config import ServerSettings
from nameserver.fastanswers import FastAnswers
from nameserver.lookup import Question, Result, ZoneIndex, lookup
from nameserver.wirequery import read_shape
from nameserver.zones import HostedZone, ZoneSet

_HEADER = struct.Struct("!HHHHHH")
_HEADER_SIZE = _HEADER.size
# The ID a query is answered with when only the rest of it was handed over: the reply's own
# ID is the network layer's to copy.
_NO_ID = b"\0\0"
# An exact cache entry's reply less its ID, and its facts.
_BODY = itemgetter(0)
_FACTS = itemgetter(1)
_QR_BYTE = dns.flags.QR >> 8  # QR in the third byte of the header
# The most we send over UDP and what we advertise: the DNS flag day 2020 value, which avoids
# IP fragmentation on every common path (Knot, NSD, BIND and PowerDNS default to it too).
UDP_PAYLOAD = 1232
# RFC 1035 §4.2.1: without EDNS a UDP message is at most 512 bytes; RFC 6891 §6.2.5: smaller
# EDNS sizes are treated as 512.
CLASSIC_UDP_LIMIT = 512
TCP_LIMIT = 65535
_TRANSFER_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)
# Zone maintenance we do not allow anyone yet: refused with NOTAUTH, as Knot does without ACLs.
_REFUSED_OPCODES = (dns.opcode.NOTIFY, dns.opcode.UPDATE)
_AUTHORITATIVE_RCODES = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN)
_ANONYMOUS = ServerSettings()


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"

    # Members are singletons, so identity is a valid hash; Enum's own hashes the name in
    # Python, a microsecond on every query that picks its answer cache.
    __hash__ = object.__hash__


class Responder:
    """Answers queries from one generation of zone data."""

    def __init__(
        self,
        zones: ZoneSet,
        server: ServerSettings = _ANONYMOUS,
        udp_payload: int = UDP_PAYLOAD,
    ) -> None:
        self.zones = zones
        self.udp_payload = udp_payload
        self._indexes = {hosted.origin: ZoneIndex(hosted.zone) for hosted in zones}
        self._chaos = _chaos_records(server)
        self._nsid = None if server.nsid is None else dns.edns.NSIDOption(server.nsid.encode())
        self._caches = {transport: AnswerCache() for transport in Transport}
        self._fast = FastAnswers(self._indexes.values(), udp_payload)

    def answer(self, wire: bytes, transport: Transport) -> bytes | None:
        """The response to ``wire``, or ``None`` when nothing must be sent back."""
        outcome = self.respond(wire, transport)
        return None if outcome is None else outcome.wire

    def respond(self, wire: bytes, transport: Transport) -> Outcome | None:
        """:meth:`answer` with what metrics and the query log want to know of it, which the
        server would otherwise have to parse back out of the bytes."""
        bodies, facts = self.respond_many([wire[2:]], transport)
        body, known = bodies[0], facts[0]
        return None if body is None or known is None else Outcome(wire[:2] + body, *known)

    def respond_many(
        self, bodies: list[bytes], transport: Transport
    ) -> tuple[list[bytes | None], list[Facts | None]]:
        """The reply to each query of ``bodies`` (what the network layer hands over at once,
        each less its ID), less its ID, and its facts, ``(rcode, qtype)``, in order; ``None``
        for both where nothing is sent.

        A query asked before with the same bytes (the server's most frequent case) costs one
        probe here, made for the whole batch in C, and no object of its own: its reply and
        facts are the cache entry's. A response or a runt never matches a stored key.
        """
        cache = self._caches[transport]
        found = list(map(cache.exact.get, bodies))
        if all(found):
            return list(map(_BODY, found)), list(map(_FACTS, found))
        replies: list[bytes | None] = []
        facts: list[Facts | None] = []
        for body, hit in zip(bodies, found, strict=True):
            if hit is None:
                outcome = self._respond_uncached(_NO_ID + body, body, transport, cache)
                hit = None if outcome is None else exact_entry(*outcome)
            replies.append(None if hit is None else hit[0])
            facts.append(None if hit is None else hit[1])
        return replies, facts

    def _respond_uncached(
        self, wire: bytes, key: bytes, transport: Transport, cache: AnswerCache
    ) -> Outcome | None:
        """:meth:`respond` past the exact level of ``cache``, the transport's, where ``key``
        (the query less its ID, hashed already) was not found."""
        if len(wire) < _HEADER_SIZE or wire[2] & _QR_BYTE:
            return None
        shape = read_shape(wire)
        if shape is None:
            return self._plain(wire, transport)[0]
        outcome = cache.shaped(wire, shape)
        if outcome is not None:
            return outcome
        fast = self._fast.answer(wire, shape)
        # Every limit is at least the classic 512 bytes, which nearly every fast answer fits.
        if fast is not None and (
            len(fast[0]) <= CLASSIC_UDP_LIMIT
            or len(fast[0]) <= self._limit(shape.edns, shape.payload, transport)
        ):
            rendered, rcode, exists = fast
            outcome = new_outcome(Outcome, (rendered, rcode, shape.qtype))
            # Names that exist are asked again, for what they have or lack (AAAA of an
            # IPv4-only host), in any letter case. A name that does not exist, answered from
            # a wildcard or not, is kept apart so that random names cannot crowd the rest.
            if exists:
                cache.store(wire, shape, outcome, case_free=True)
            else:
                cache.store_nonexistent(key, outcome)
            return outcome
        outcome, case_free = self._plain(wire, transport)
        cache.store(wire, shape, outcome, case_free)
        return outcome

    def respond_plain(self, wire: bytes, transport: Transport) -> Outcome | None:
        """:meth:`respond` through dnspython alone: the reference the fast paths must match."""
        if len(wire) < _HEADER_SIZE or wire[2] & _QR_BYTE:
            return None
        return self._plain(wire, transport)[0]

    def _plain(self, wire: bytes, transport: Transport) -> tuple[Outcome, bool]:
        """The answer to a query of at least a header with QR clear, and whether its bytes
        repeat the query name's letter case only in the question (see :class:`AnswerCache`).

        A DNAME's synthesized CNAME target is the only place where the name is copied
        letter by letter (RFC 6672 §2.2); everywhere else it is a compression pointer to the
        question or a name of the zone.
        """
        query_id, flags = _HEADER.unpack_from(wire)[:2]
        try:
            query = dns.message.from_wire(wire)
        except dns.message.UnknownTSIGKey:
            rcode = dns.rcode.NOTAUTH
            return Outcome(_header_only(query_id, flags, rcode), rcode), True
        except Exception:
            # Whatever dnspython cannot parse is a format error to the client (RFC 1035 §4.1.1).
            rcode = dns.rcode.FORMERR
            return Outcome(_header_only(query_id, flags, rcode), rcode), True
        response = dns.message.make_response(query)
        # RFC 4035 §3.1.6 and §3.2.1: CD is copied; RFC 3225 §3: so is DO. Other EDNS flags
        # and options are not echoed (RFC 6891 §6.1.4); NSID is ours to add (RFC 5001 §2.1).
        response.flags |= query.flags & dns.flags.CD
        if query.edns >= 0:
            asks_nsid = any(option.otype == dns.edns.NSID for option in query.options)
            options = [self._nsid] if self._nsid is not None and asks_nsid else []
            dnssec_ok = query.ednsflags & dns.flags.DO
            response.use_edns(0, dnssec_ok, self.udp_payload, query.payload, options)
        result = self._resolve(query, transport)
        response.set_rcode(result.rcode)
        if result.authoritative and result.rcode in _AUTHORITATIVE_RCODES:
            response.flags |= dns.flags.AA
        response.answer = result.answer
        response.authority = result.authority
        response.additional = result.additional
        limit = self._limit(query.edns, query.payload, transport)
        rendered = _render(response, result.required_additional, limit)
        qtype = query.question[0].rdtype if len(query.question) == 1 else -1
        case_free = all(rrset.rdtype != dns.rdatatype.DNAME for rrset in result.answer)
        return Outcome(rendered, result.rcode, qtype), case_free

    def _resolve(self, query: dns.message.Message, transport: Transport) -> Result:
        """Every header and question check, then the lookup; errors become an rcode."""
        if query.opcode() in _REFUSED_OPCODES:
            return Result(rcode=dns.rcode.NOTAUTH, authoritative=False)
        if query.opcode() != dns.opcode.QUERY:
            return Result(rcode=dns.rcode.NOTIMP, authoritative=False)
        if query.edns > 0:
            return Result(rcode=dns.rcode.BADVERS, authoritative=False)
        if len(query.question) != 1:
            return Result(rcode=dns.rcode.FORMERR, authoritative=False)
        question = query.question[0]
        if question.rdclass == dns.rdataclass.CH:
            return self._chaos_answer(question.name, question.rdtype)
        if question.rdclass != dns.rdataclass.IN:
            return Result(rcode=dns.rcode.REFUSED, authoritative=False)
        if question.rdtype == dns.rdatatype.AXFR and transport is Transport.UDP:
            # RFC 5936 §4.2: AXFR is defined over TCP only.
            return Result(rcode=dns.rcode.NOTIMP, authoritative=False)
        if question.rdtype in _TRANSFER_TYPES:
            # No transfers are allowed to anyone yet, which Knot also says with NOTAUTH.
            return Result(rcode=dns.rcode.NOTAUTH, authoritative=False)
        if question.rdtype == 0:
            # TYPE 0 is reserved (RFC 6895 §3.1): no data can be asked for with it.
            return Result(rcode=dns.rcode.NOTIMP, authoritative=False)
        hosted = self._zone_for(question.name, question.rdtype)
        if hosted is None:
            return Result(rcode=dns.rcode.REFUSED, authoritative=False)
        wanted = Question(
            question.rdtype,
            dnssec=bool(query.ednsflags & dns.flags.DO),
            minimal_any=transport is Transport.UDP,
        )
        return lookup(self._indexes[hosted.origin], question.name, wanted)

    def _zone_for(self, qname: dns.name.Name, qtype: int) -> HostedZone | None:
        """The closest enclosing zone, except that DS at a hosted child's apex is the
        parent's data (RFC 4035 §3.1.4.1) when we host the parent too."""
        hosted = self.zones.find(qname)
        if hosted is None or qtype != dns.rdatatype.DS or hosted.origin != qname:
            return hosted
        parent = None if qname == dns.name.root else self.zones.find(qname.parent())
        return parent or hosted

    def _chaos_answer(self, qname: dns.name.Name, qtype: int) -> Result:
        """CH TXT about the server itself, where configured; REFUSED for the rest of CH.

        No zone holds these names, so the answer is not authoritative (as Knot and NSD do).
        """
        text = self._chaos.get(qname)
        if text is None or qtype != dns.rdatatype.TXT:
            return Result(rcode=dns.rcode.REFUSED, authoritative=False)
        txt = TXT(dns.rdataclass.CH, dns.rdatatype.TXT, [text.encode()])
        return Result(authoritative=False, answer=[dns.rrset.from_rdata(qname, 0, txt)])

    def _limit(self, edns: int, payload: int, transport: Transport) -> int:
        """The largest response the client can take (``edns`` -1: the query had no OPT)."""
        if transport is Transport.TCP:
            return TCP_LIMIT
        if edns < 0:
            return CLASSIC_UDP_LIMIT
        return min(max(payload, CLASSIC_UDP_LIMIT), self.udp_payload)


def _to_wire(response: dns.message.Message, limit: int) -> bytes:
    """The response's bytes, its records in zone file order.

    dnspython shuffles the records of each RRset by default (round robin). NSD and Knot keep
    the order, and an answer must not depend on chance: the answer cache stores one rendering
    and the differential tests compare the fast paths with this one.
    """
    return response.to_wire(max_size=limit, want_shuffle=False)


def _render(response: dns.message.Message, required_additional: int, limit: int) -> bytes:
    """The response in at most ``limit`` bytes, never with a partial RRset.

    Optional additional data goes first; when what remains still does not fit, the client
    gets TC=1 with the question alone and retries over TCP (RFC 2181 §9, RFC 9471).
    """
    try:
        return _to_wire(response, limit)
    except dns.exception.TooBig:
        pass
    if len(response.additional) > required_additional:
        del response.additional[required_additional:]
        try:
            return _to_wire(response, limit)
        except dns.exception.TooBig:
            pass
    response.answer = []
    response.authority = []
    response.additional = []
    response.flags |= dns.flags.TC
    try:
        return _to_wire(response, limit)
    except dns.exception.TooBig:
        # Only a question section that is itself too big gets here (several long names in
        # a FORMERR reply): the header still tells the client what happened.
        response.question = []
        return _to_wire(response, limit)


def _chaos_records(server: ServerSettings) -> dict[dns.name.Name, str]:
    """The CH TXT names BIND made customary, for what the operator chose to reveal."""
    names = {"id.server.": server.identity, "hostname.bind.": server.identity}
    names |= {"version.server.": server.version, "version.bind.": server.version}
    return {dns.name.from_text(name): text for name, text in names.items() if text is not None}


def _header_only(query_id: int, query_flags: int, rcode: int) -> bytes:
    """A response to a query too broken to echo: its ID, opcode and RD, and an rcode."""
    kept = query_flags & (dns.flags.RD | 0x7800)  # 0x7800: the opcode bits
    return _HEADER.pack(query_id, dns.flags.QR | kept | rcode, 0, 0, 0, 0)
