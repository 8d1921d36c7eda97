"""The accepted differences between nameserverd and Knot DNS 3.2: the only place they live.

A difference is accepted only when both answers are legitimate server choices, or when Knot
deviates from an RFC and nameserverd follows it. Each rule says which, with the RFC text it
rests on, the categories it may touch, and a predicate that looks at one difference of one
case; anything no rule accepts fails the case. Rules are deliberately narrow: they check the
direction of the difference (which server has what), so the same difference the other way
round is still a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

ACCEPTED_LOG: list[tuple[str, str]] = []
"""(case id, rule name) for every difference accepted in the conformance run, filled by
``test_conformance`` and printed at the end of the session, so that what the rules excuse
stays visible."""

if TYPE_CHECKING:
    from .case import Case
    from .compare import Difference
    from .normal import RR, Reply

Predicate = Callable[["Case", "Reply | None", "Reply | None", "Difference"], bool]

SECTION_ASPECTS = ("answer", "authority", "additional", "answer order")
_ADDRESS = (dns.rdatatype.A, dns.rdatatype.AAAA)
_EDE = 15
_EXPIRE = 9
_COOKIE = 10
_ECS = 8


@dataclass(frozen=True)
class Rule:
    """A named, documented accepted difference."""

    name: str
    reason: str
    categories: tuple[str, ...]
    """The categories it may apply to; empty means every category."""
    accepts: Predicate

    def applies(self, case: Case) -> bool:
        return not self.categories or case.category in self.categories


def _udp_limit(case: Case) -> int:
    """The reply size the client allowed (RFC 1035 §4.2.1, RFC 6891 §6.2.5), capped at 1232,
    which both servers advertise and honour as their maximum."""
    if case.transport == "tcp":
        return 65535
    if case.edns is None:
        return 512
    return min(max(case.payload, 512), 1232)


def _is_referral(reply: Reply) -> bool:
    """No AA, nothing in the answer, NS in authority: a delegation (RFC 1034 §4.3.2 step 3b)."""
    return (
        "AA" not in reply.flags
        and not reply.answer
        and any(rr.rdtype == dns.rdatatype.NS for rr in reply.authority)
    )


def _required_glue(rr: RR, reply: Reply) -> bool:
    """In-domain glue of a referral: the only additional data RFC 9471 §3 makes mandatory."""
    if not _is_referral(reply):
        return False
    cuts = {ns.owner for ns in reply.authority if ns.rdtype == dns.rdatatype.NS}
    return any(rr.owner == cut or rr.owner.endswith("." + cut) for cut in cuts)


def _optional_address(rr: RR) -> bool:
    return rr.rdtype in _ADDRESS or rr.covers in _ADDRESS


def _both_truncated(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    return (
        knot is not None
        and ours is not None
        and "TC" in knot.flags
        and "TC" in ours.flags
        and d.aspect in SECTION_ASPECTS
    )


def _additional_for_space(
    case: Case, knot: Reply | None, ours: Reply | None, d: Difference
) -> bool:
    if knot is None or ours is None or d.aspect != "additional" or case.transport == "tcp":
        return False
    if d.only_knot and d.only_ours:
        return False  # not one side omitting: they hold different data
    fuller, extra = (knot, d.only_knot) if d.only_knot else (ours, d.only_ours)
    if not all(_optional_address(rr) and not _required_glue(rr, fuller) for rr in extra):
        return False
    # Left out for space only: the fuller reply is close to what the client allowed.
    return len(fuller.wire) >= 0.75 * _udp_limit(case)


def _options_differ_only_by(code: int) -> Predicate:
    def accepts(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
        if knot is None or ours is None or d.aspect != "edns options":
            return False
        if knot.edns is None or ours.edns is None:
            return False
        theirs = [option for option in knot.edns.options if option[0] != code]
        mine = [option for option in ours.edns.options if option[0] != code]
        return theirs == mine and not any(option[0] == code for option in ours.edns.options)

    return accepts


def _expire_ignored(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    asked = any(code == _EXPIRE for code, _ in case.options)
    return asked and _options_differ_only_by(_EXPIRE)(case, knot, ours, d)


def _cd_copied(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    return d.aspect == "flag CD" and case.cd and d.ours == "1" and d.knot == "0"


def _any_over_tcp(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    return (
        case.rdtype == dns.rdatatype.ANY
        and case.transport == "tcp"
        and d.aspect in ("answer", "additional")
        and not d.only_knot
    )


def _all_rrsigs(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    return (
        case.rdtype == dns.rdatatype.RRSIG
        and d.aspect == "answer"
        and not d.only_knot
        and all(rr.rdtype == dns.rdatatype.RRSIG for rr in d.only_ours)
    )


def _overflows(qname: str, rr: RR) -> bool:
    """Whether ``rr`` is a DNAME whose substitution into ``qname`` exceeds 255 octets."""
    if rr.rdtype != dns.rdatatype.DNAME:
        return False
    owner = len(dns.name.from_text(rr.owner).to_wire())
    return len(dns.name.from_text(qname).to_wire()) - owner + len(rr.rdata) > 255


def _dname_overflow(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    if knot is None or ours is None:
        return False
    if ours.rcode != dns.rcode.YXDOMAIN or knot.rcode != dns.rcode.NXDOMAIN:
        return False
    if not any(_overflows(case.qname, rr) for rr in ours.answer):
        return False
    if d.aspect == "rcode":
        return True
    return (
        d.aspect == "authority"
        and not d.only_ours
        and all(rr.rdtype in (dns.rdatatype.SOA, dns.rdatatype.RRSIG) for rr in d.only_knot)
    )


def _qclass_any_refused(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    if case.rdclass != dns.rdataclass.ANY or ours is None or ours.rcode != dns.rcode.REFUSED:
        return False
    return d.aspect in ("rcode", "flag AA") or (d.aspect == "answer" and not d.only_ours)


_CHAOS_NAMES = ("version.bind.", "version.server.", "id.server.", "hostname.bind.")


def _not_dropped(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    return (
        case.raw in ("qdcount2", "cut-question")
        and knot is None
        and ours is not None
        and ours.rcode == dns.rcode.FORMERR
        and d.aspect == "reply"
    )


def _bare_formerr(case: Case, knot: Reply | None, ours: Reply | None, d: Difference) -> bool:
    if knot is None or ours is None:
        return False
    both = knot.rcode == ours.rcode == dns.rcode.FORMERR
    return both and not ours.question and d.aspect in ("question", "edns presence")


def _malformed_option(case: Case) -> bool:
    """A COOKIE of a length RFC 7873 §4 forbids, an ECS option RFC 7871 §6 forbids, or an OPT
    whose owner is not the root (RFC 6891 §6.1.2)."""
    for code, data in case.options:
        if code == _COOKIE and not (len(data) == 8 or 16 <= len(data) <= 40):
            return True
        if code == _ECS and not _valid_ecs(data):
            return True
    return case.raw == "opt-nonroot"


def _valid_ecs(data: bytes) -> bool:
    """RFC 7871 §6: family 1 or 2, source prefix within the family, address exactly as long
    as the prefix needs with the bits beyond it zero."""
    if len(data) < 4:
        return False
    family, source = int.from_bytes(data[:2], "big"), data[2]
    width = {1: 32, 2: 128}.get(family)
    address = data[4:]
    if width is None or source > width or len(address) != (source + 7) // 8:
        return False
    spare = (8 - source % 8) % 8
    return not address or address[-1] & ((1 << spare) - 1) == 0


def _formerr_for_malformed(
    case: Case, knot: Reply | None, ours: Reply | None, d: Difference
) -> bool:
    if not _malformed_option(case) or knot is None or ours is None:
        return False
    if ours.rcode != dns.rcode.FORMERR or knot.rcode != dns.rcode.NOERROR:
        return False
    return d.aspect in ("rcode", "flag AA", "question", "edns presence") or (
        d.aspect in ("answer", "authority", "additional") and not d.only_ours
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "truncated-content",
        "Both replies have TC=1: the client discards them and asks again over TCP (RFC 2181 "
        "§9, RFC 1035 §4.2.1), so which whole RRsets are left in the sections is the server's "
        "choice. Knot keeps what fits, nameserverd keeps only the question. TC, RCODE, "
        "question and OPT are still compared.",
        (),
        _both_truncated,
    ),
    Rule(
        "additional-left-out-for-space",
        "RFC 2181 §9: TC is not set merely because additional-section data did not fit, and "
        "RFC 9471 §3 makes only a referral's in-domain glue mandatory. When the addresses of "
        "MX/SRV/NS targets do not all fit, Knot adds as many as fit and nameserverd none. "
        "Accepted only for A/AAAA (and their RRSIGs) that are not referral glue, one side "
        "holding a subset, and the fuller reply within 75% of the size limit.",
        (),
        _additional_for_space,
    ),
    Rule(
        "extended-dns-error-optional",
        "RFC 8914 §3: the EDE option MAY be added to a response; Knot adds EDE 20 (Not "
        "Authoritative) to REFUSED answers, nameserverd adds none. The RCODE must match.",
        (),
        _options_differ_only_by(_EDE),
    ),
    Rule(
        "edns-expire-not-implemented",
        "RFC 7314 (EDNS EXPIRE) is optional and RFC 6891 §6.1.2 has a server ignore options "
        "it does not implement: Knot returns the zone's SOA expire, nameserverd ignores it.",
        ("edns",),
        _expire_ignored,
    ),
    Rule(
        "cd-bit-copied",
        "RFC 4035 §3: 'a security-aware name server MUST copy the CD bit from a query into "
        "the corresponding response'. nameserverd does; Knot 3.2 clears it (a Knot deviation).",
        ("header", "dnssec"),
        _cd_copied,
    ),
    Rule(
        "any-over-tcp-in-full",
        "RFC 8482 §4 lets a responder give a conventional (full) ANY response where it chooses "
        "to, naming TCP as the transport for it; nameserverd answers ANY over UDP with one "
        "RRset (as Knot does) and over TCP with all of them. Knot gives one RRset on TCP too.",
        ("any",),
        _any_over_tcp,
    ),
    Rule(
        "rrsig-query-answered-in-full",
        "A QTYPE=RRSIG question is answered with the RRSIG RRs at the name (RFC 1034 §4.3.2 "
        "step 3a: the RRs of the asked type). nameserverd returns all of them; Knot 3.2 "
        "answers RRSIG queries like a minimal ANY (RFC 8482), with the RRSIG of one type.",
        ("dnssec",),
        _all_rrsigs,
    ),
    Rule(
        "dname-overflow-yxdomain",
        "RFC 6672 §2.2: when the name a DNAME substitution makes would exceed 255 octets, the "
        "server returns YXDOMAIN (with the DNAME). Knot 3.2 returns NXDOMAIN with the SOA "
        "(a Knot deviation).",
        ("dname",),
        _dname_overflow,
    ),
    Rule(
        "qclass-any-refused",
        "Answering QCLASS * (RFC 1035 §3.2.5) is optional, and an authoritative server can "
        "only answer it with AA if it serves every class of the name (RFC 6895 §3.2); Knot "
        "answers with the IN data and AA=1. nameserverd refuses every QCLASS but IN.",
        ("class",),
        _qclass_any_refused,
    ),
    Rule(
        "formerr-not-silence",
        "A query whose question section is malformed (QDCOUNT=2, a cut name) gets FORMERR "
        "(RFC 1035 §4.1.1; RFC 9619 for QDCOUNT > 1); RFC 8906 (BCP 231) asks servers to "
        "answer rather than drop. Knot 3.2 drops these silently (a Knot deviation).",
        ("header",),
        _not_dropped,
    ),
    Rule(
        "formerr-bare-header",
        "For a query it could not interpret (FORMERR, RFC 1035 §4.1.1) nameserverd sends the "
        "bare header (ID, opcode, RD, RCODE) without echoing parts of the rejected message; "
        "Knot echoes the question. No RFC defines the sections of a FORMERR reply.",
        (),
        _bare_formerr,
    ),
    Rule(
        "formerr-for-malformed-options",
        "A malformed COOKIE (RFC 7873 §5.2.2), a malformed ECS option (RFC 7871 §6, §7.2.1) "
        "and an OPT owned by a name other than the root (RFC 6891 §6.1.2) make nameserverd "
        "answer FORMERR. Knot 3.2 implements neither cookies (without its module) nor ECS "
        "(off by default) and ignores the options, and it accepts any OPT owner.",
        ("edns",),
        _formerr_for_malformed,
    ),
)
