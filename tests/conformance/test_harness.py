"""The suite's own machinery, checked without servers: it must be able to fail.

A comparison that found no difference between two different replies, an accepted rule that
also excused the opposite difference, or a hand-built query that is not the malformation it
claims would all make the conformance run pass for the wrong reason.
"""

from __future__ import annotations

import struct
from collections import Counter

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from .accepted import RULES, _valid_ecs
from .case import TCP, Case
from .cases import CASES, CATEGORIES, LONG_DNAME_QNAME
from .compare import compare, report
from .wire import RAW_BUILDERS, Exchange, query_wire

QUERY_ID = 0x4242


def _reply(
    qname: str = "www.example.",
    rdtype: str = "A",
    answer: list[str] | None = None,
    authority: list[str] | None = None,
    flags: int = dns.flags.QR | dns.flags.AA,
    rcode: int = dns.rcode.NOERROR,
) -> Exchange:
    """An exchange whose reply is built from zone-file text lines."""
    message = dns.message.make_query(qname, rdtype, id=QUERY_ID, use_edns=0)
    message.flags = flags
    message.set_rcode(rcode)
    for section, lines in ((message.answer, answer), (message.authority, authority)):
        for line in lines or []:
            name, ttl, rdclass, kind, *data = line.split()
            section.append(dns.rrset.from_text(name, int(ttl), rdclass, kind, " ".join(data)))
    return Exchange(message.to_wire(), probe_answered=True)


CASE = Case("basic", "www.example.", "A")
WWW = "www.example. 3600 IN A 192.0.2.10"
SOA = "example. 300 IN SOA ns1.example. hostmaster.example. 1 7200 3600 1209600 300"


def test_identical_replies_pass() -> None:
    assert compare(CASE, QUERY_ID, _reply(answer=[WWW]), _reply(answer=[WWW])).ok


def test_rrs_in_another_order_pass() -> None:
    two = ["www.example. 3600 IN A 192.0.2.10", "www.example. 3600 IN A 192.0.2.11"]
    first = _reply(answer=two)
    message = dns.message.from_wire(first.reply or b"")
    rrset = message.answer[0]
    reordered = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    for rdata in reversed(list(rrset)):
        reordered.add(rdata, rrset.ttl)
    message.answer = [reordered]
    assert compare(CASE, QUERY_ID, first, Exchange(message.to_wire(), True)).ok


@pytest.mark.parametrize(
    ("ours", "aspect"),
    [
        (_reply(answer=["www.example. 3600 IN A 192.0.2.99"]), "answer"),
        (_reply(answer=["www.example. 60 IN A 192.0.2.10"]), "answer"),
        (_reply(answer=[WWW], authority=[SOA]), "authority"),
        (_reply(answer=[WWW], flags=dns.flags.QR), "flag AA"),
        (_reply(answer=[WWW], rcode=dns.rcode.SERVFAIL), "rcode"),
        (_reply(qname="WWW.example.", answer=[WWW]), "question"),
        (Exchange(None, probe_answered=True), "reply"),
    ],
)
def test_each_kind_of_difference_fails(ours: Exchange, aspect: str) -> None:
    outcome = compare(CASE, QUERY_ID, _reply(answer=[WWW]), ours)
    assert aspect in [difference.aspect for difference in outcome.failures], report(outcome)
    assert "only" in report(outcome) or aspect not in ("answer", "authority")


def test_chain_order_is_compared() -> None:
    chain = ["a.example. 3600 IN CNAME b.example.", "b.example. 3600 IN CNAME www.example."]
    case = Case("cname", "a.example.", "A")
    knot = _reply("a.example.", answer=[*chain, WWW])
    ours = _reply("a.example.", answer=[chain[1], chain[0], WWW])
    failures = compare(case, QUERY_ID, knot, ours).failures
    assert [difference.aspect for difference in failures] == ["answer order"]


def test_a_server_that_never_answered_fails() -> None:
    silent = Exchange(None, probe_answered=False)
    failures = compare(CASE, QUERY_ID, _reply(answer=[WWW]), silent).failures
    assert "probe" in [difference.aspect for difference in failures]


def test_a_wrong_id_fails() -> None:
    ours = _reply(answer=[WWW])
    wire = struct.pack("!H", QUERY_ID + 1) + (ours.reply or b"")[2:]
    failures = compare(CASE, QUERY_ID, _reply(answer=[WWW]), Exchange(wire, True)).failures
    assert "id" in [difference.aspect for difference in failures]


def test_cd_rule_accepts_only_the_rfc_direction() -> None:
    case = Case("header", "www.example.", "A", cd=True)
    knot = _reply(answer=[WWW])
    ours = _reply(answer=[WWW], flags=dns.flags.QR | dns.flags.AA | dns.flags.CD)
    assert compare(case, QUERY_ID, knot, ours).ok
    assert not compare(case, QUERY_ID, ours, knot).ok


def test_yxdomain_rule_accepts_only_the_rfc_direction() -> None:
    target = f"{'a' * 63}.{'b' * 63}.{'c' * 63}.example."
    dname = f"long.example. 3600 IN DNAME {target}"
    for qname, overflows in ((LONG_DNAME_QNAME, True), ("x.long.example.", False)):
        case = Case("dname", qname, "A")
        knot = _reply(qname, answer=[dname], authority=[SOA], rcode=dns.rcode.NXDOMAIN)
        ours = _reply(qname, answer=[dname], rcode=dns.rcode.YXDOMAIN)
        assert compare(case, QUERY_ID, knot, ours).ok is overflows, qname
        assert not compare(case, QUERY_ID, ours, knot).ok


def test_truncated_content_needs_tc_on_both_sides() -> None:
    tc = dns.flags.QR | dns.flags.AA | dns.flags.TC
    knot = _reply(answer=[WWW], flags=tc)
    assert compare(CASE, QUERY_ID, knot, _reply(flags=tc)).ok
    assert not compare(CASE, QUERY_ID, knot, _reply()).ok


def test_additional_space_rule_does_not_excuse_small_replies() -> None:
    """A missing address in a small reply is a real omission, not one for space."""
    case = Case("additional", "example.", "MX")
    knot = _reply("example.", "MX", answer=["example. 3600 IN MX 10 mail.example."])
    message = dns.message.from_wire(knot.reply or b"")
    message.additional.append(dns.rrset.from_text("mail.example.", 3600, "IN", "A", "192.0.2.25"))
    fuller = Exchange(message.to_wire(), True)
    assert not compare(case, QUERY_ID, fuller, knot).ok


def test_every_rule_is_documented() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert "RFC" in rule.reason, rule.name
        assert set(rule.categories) <= set(CATEGORIES), rule.name


def test_the_table_is_big_unique_and_covers_every_category() -> None:
    ids = [case.id for case in CASES]
    assert len(CASES) >= 300
    assert not [case_id for case_id, n in Counter(ids).items() if n > 1]
    counts = Counter(case.category for case in CASES)
    expected = {
        "basic",
        "negative",
        "ent",
        "cname",
        "referral",
        "wildcard",
        "dname",
        "any",
        "class",
        "additional",
        "header",
        "meta",
        "edns",
        "truncation",
        "dnssec",
    }
    assert set(counts) == expected
    assert min(counts.values()) >= 10, counts
    assert {case.transport for case in CASES} == {"udp", TCP}


def test_raw_queries_are_the_malformations_they_claim() -> None:
    base = Case("header", "www.example.", "A")

    def header(raw: str) -> tuple[int, ...]:
        return struct.unpack_from("!HHHHHH", RAW_BUILDERS[raw](base, 1).ljust(12, b"\0"))

    assert header("qr")[1] & dns.flags.QR
    assert header("qdcount0")[2] == 0
    assert header("qdcount2")[2] == 2
    assert len(RAW_BUILDERS["short-header"](base, 1)) < 12
    assert header("two-opt")[5] == 2
    assert header("opt-in-answer")[3] == 1
    assert header("z-bit")[1] & 0x0040
    for raw in ("two-opt", "cut-question", "trailing-garbage", "opt-in-answer"):
        with pytest.raises(dns.exception.DNSException):
            dns.message.from_wire(RAW_BUILDERS[raw](base, 1))
    # The plain builder keeps the question's letter case exactly.
    wire = query_wire(Case("basic", "WwW.ExAmPlE.", "A"), 1)
    assert b"\x03WwW\x07ExAmPlE\x00" in wire


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ("00011800c00002", True),
        ("000120000000000000", False),
        ("00011800c0000201", False),
        ("00011800c00003ff", False),
        ("00012100c000020101", False),
        ("00032000c0000201", False),
        ("0001", False),
        ("00010000", True),
        ("00024000200100000db80000", True),
    ],
)
def test_ecs_validity(data: str, valid: bool) -> None:
    assert _valid_ecs(bytes.fromhex(data)) is valid
