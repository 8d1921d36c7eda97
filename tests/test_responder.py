"""The responder with dnspython messages: bytes in, bytes out, no sockets."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from nameserver.config import ServerSettings, ZoneSettings
from nameserver.responder import Responder, Transport
from nameserver.zones import load_zones

ZONE = """\
$ORIGIN example.com.
$TTL 3600
@        SOA   ns1 hostmaster 1 7200 3600 1209600 300
@        NS    ns1
@        NS    ns.elsewhere.net.
@        MX    10 mail
ns1      A     192.0.2.53
mail     A     192.0.2.25
mail     AAAA  2001:db8::25
www      A     192.0.2.80
www      AAAA  2001:db8::80
ftp      CNAME www
away     CNAME www.example.net.
dangling CNAME nowhere
loop1    CNAME loop2
loop2    CNAME loop1
a.b      TXT   "below an empty non-terminal"
*.wild   A     192.0.2.99
lab      NS    ns.lab
lab      NS    ns.other.example.com.
lab      DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.lab   A     192.0.2.153
ns.lab   AAAA  2001:db8::153
ns.other A     192.0.2.154
old      DNAME new.example.com.
new      A     192.0.2.7
x.new    A     192.0.2.8
far      DNAME {long}
{big}
"""
LONG_TARGET = ".".join(["a" * 60] * 3) + ".example."
BIG = "\n".join(f"big A 10.0.{i // 256}.{i % 256}" for i in range(100))


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Responder:
    path = tmp_path_factory.mktemp("zones") / "example.com.zone"
    path.write_text(ZONE.format(big=BIG, long=LONG_TARGET))
    zones = load_zones([ZoneSettings(dns.name.from_text("example.com."), Path(path))])
    return Responder(zones, ServerSettings(identity="ns1.test", version="1.0", nsid="ns1"))


def ask(
    responder: Responder,
    qname: str,
    qtype: str = "A",
    transport: Transport = Transport.UDP,
    **make: object,
) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, **make)  # type: ignore[arg-type]
    wire = responder.answer(query.to_wire(), transport)
    assert wire is not None
    return dns.message.from_wire(wire)


def rdata_text(response: dns.message.Message, section: str = "answer") -> set[str]:
    return {
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rdata}"
        for rrset in getattr(response, section)
        for rdata in rrset
    }


def test_authoritative_answer(responder: Responder) -> None:
    response = ask(responder, "www.example.com.")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert not response.flags & dns.flags.RA
    assert rdata_text(response) == {"www.example.com. A 192.0.2.80"}


def test_question_keeps_the_clients_letter_case(responder: Responder) -> None:
    query = dns.message.make_query("WwW.ExAmPlE.CoM.", "A")
    wire = responder.answer(query.to_wire(), Transport.UDP)
    assert wire is not None
    assert b"\x03WwW\x07ExAmPlE\x03CoM\x00" in wire
    assert rdata_text(dns.message.from_wire(wire)) == {"WwW.ExAmPlE.CoM. A 192.0.2.80"}


def test_rd_is_copied(responder: Responder) -> None:
    assert ask(responder, "www.example.com.").flags & dns.flags.RD
    no_rd = dns.message.make_query("www.example.com.", "A")
    no_rd.flags &= ~dns.flags.RD
    wire = responder.answer(no_rd.to_wire(), Transport.UDP)
    assert wire is not None
    assert not dns.message.from_wire(wire).flags & dns.flags.RD


def test_nxdomain_carries_the_soa_with_the_negative_ttl(responder: Responder) -> None:
    response = ask(responder, "nope.example.com.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == 300  # min(SOA TTL 3600, MINIMUM 300), RFC 2308 §3


def test_nodata(responder: Responder) -> None:
    response = ask(responder, "www.example.com.", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_empty_non_terminal_is_nodata(responder: Responder) -> None:
    response = ask(responder, "b.example.com.", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_cname_is_followed_in_zone(responder: Responder) -> None:
    response = ask(responder, "ftp.example.com.")
    assert rdata_text(response) == {
        "ftp.example.com. CNAME www.example.com.",
        "www.example.com. A 192.0.2.80",
    }
    assert response.flags & dns.flags.AA


def test_cname_out_of_zone_stops_at_the_cname(responder: Responder) -> None:
    response = ask(responder, "away.example.com.")
    assert rdata_text(response) == {"away.example.com. CNAME www.example.net."}
    assert response.rcode() == dns.rcode.NOERROR


def test_dangling_cname_is_nxdomain_for_the_target(responder: Responder) -> None:
    response = ask(responder, "dangling.example.com.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert rdata_text(response) == {"dangling.example.com. CNAME nowhere.example.com."}


def test_cname_loop_stops(responder: Responder) -> None:
    response = ask(responder, "loop1.example.com.")
    assert rdata_text(response) == {
        "loop1.example.com. CNAME loop2.example.com.",
        "loop2.example.com. CNAME loop1.example.com.",
    }


def test_qtype_cname_is_answered_directly(responder: Responder) -> None:
    assert rdata_text(ask(responder, "ftp.example.com.", "CNAME")) == {
        "ftp.example.com. CNAME www.example.com."
    }


def test_wildcard_synthesises_the_query_name(responder: Responder) -> None:
    response = ask(responder, "anything.wild.example.com.")
    assert rdata_text(response) == {"anything.wild.example.com. A 192.0.2.99"}
    assert response.flags & dns.flags.AA


def test_referral_has_ns_and_glue_and_no_aa(responder: Responder) -> None:
    response = ask(responder, "host.lab.example.com.")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AA
    assert not response.answer
    assert rdata_text(response, "authority") == {
        "lab.example.com. NS ns.lab.example.com.",
        "lab.example.com. NS ns.other.example.com.",
    }
    assert rdata_text(response, "additional") == {
        "ns.lab.example.com. A 192.0.2.153",
        "ns.lab.example.com. AAAA 2001:db8::153",
        "ns.other.example.com. A 192.0.2.154",
    }


def test_ds_at_the_cut_is_answered_by_the_parent(responder: Responder) -> None:
    response = ask(responder, "lab.example.com.", "DS")
    assert response.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.DS]


def test_mx_targets_get_their_addresses(responder: Responder) -> None:
    response = ask(responder, "example.com.", "MX")
    assert rdata_text(response, "additional") == {
        "mail.example.com. A 192.0.2.25",
        "mail.example.com. AAAA 2001:db8::25",
    }


def test_outside_every_zone_is_refused(responder: Responder) -> None:
    response = ask(responder, "www.example.org.")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA
    assert not response.answer


@pytest.mark.parametrize("rdclass", ["CH", "HS"])
def test_other_classes_are_refused(responder: Responder, rdclass: str) -> None:
    response = ask(responder, "www.example.com.", rdclass=dns.rdataclass.from_text(rdclass))
    assert response.rcode() == dns.rcode.REFUSED


def test_zone_transfers_are_not_authorized(responder: Responder) -> None:
    assert ask(responder, "example.com.", "AXFR").rcode() == dns.rcode.NOTIMP  # UDP
    for qtype in ("AXFR", "IXFR"):
        response = ask(responder, "example.com.", qtype, transport=Transport.TCP)
        assert response.rcode() == dns.rcode.NOTAUTH


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE])
def test_notify_and_update_are_not_authorized(
    responder: Responder, opcode: dns.opcode.Opcode
) -> None:
    query = dns.message.make_query("example.com.", "SOA")
    query.set_opcode(opcode)
    wire = responder.answer(query.to_wire(), Transport.UDP)
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTAUTH


class TestHeaderChecks:
    def test_a_response_gets_no_response(self, responder: Responder) -> None:
        query = dns.message.make_query("www.example.com.", "A")
        query.flags |= dns.flags.QR
        assert responder.answer(query.to_wire(), Transport.UDP) is None

    @pytest.mark.parametrize("wire", [b"", b"\x12", b"\x12\x34\x01\x00\x00"])
    def test_less_than_a_header_gets_nothing(self, responder: Responder, wire: bytes) -> None:
        assert responder.answer(wire, Transport.UDP) is None

    def test_garbage_after_the_header_is_formerr(self, responder: Responder) -> None:
        wire = responder.answer(
            b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff", Transport.UDP
        )
        assert wire is not None
        response = dns.message.from_wire(wire)
        assert (response.id, response.rcode()) == (0xABCD, dns.rcode.FORMERR)
        assert response.flags & dns.flags.QR
        assert response.flags & dns.flags.RD

    @pytest.mark.parametrize("count", [0, 2])
    def test_question_count_other_than_one_is_formerr(
        self, responder: Responder, count: int
    ) -> None:
        query = dns.message.make_query("www.example.com.", "A")
        query.question = query.question * count
        wire = responder.answer(query.to_wire(), Transport.UDP)
        assert wire is not None
        assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR

    def test_other_opcodes_are_not_implemented(self, responder: Responder) -> None:
        query = dns.message.make_query("www.example.com.", "A")
        query.set_opcode(dns.opcode.STATUS)
        wire = responder.answer(query.to_wire(), Transport.UDP)
        assert wire is not None
        assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP


class TestEdns:
    def test_opt_is_echoed_with_our_payload(self, responder: Responder) -> None:
        response = ask(responder, "www.example.com.", use_edns=0, payload=4096)
        assert response.edns == 0
        assert response.payload == 1232

    def test_no_opt_without_edns(self, responder: Responder) -> None:
        assert ask(responder, "www.example.com.").edns == -1

    def test_unknown_version_is_badvers(self, responder: Responder) -> None:
        response = ask(responder, "www.example.com.", use_edns=1)
        assert response.rcode() == dns.rcode.BADVERS
        assert response.edns == 0
        assert not response.answer


class TestTruncation:
    """``big`` holds 100 A records: about 1.6 kB, more than any UDP limit we use."""

    @pytest.mark.parametrize(
        "make",
        [{}, {"use_edns": 0, "payload": 512}, {"use_edns": 0, "payload": 4096}],
        ids=["no-edns", "edns-512", "edns-4096-capped-at-1232"],
    )
    def test_udp_gets_tc_and_no_partial_rrset(
        self, responder: Responder, make: dict[str, int]
    ) -> None:
        response = ask(responder, "big.example.com.", **make)  # type: ignore[arg-type]
        assert response.flags & dns.flags.TC
        assert not response.answer
        assert response.question[0].name == dns.name.from_text("big.example.com.")

    def test_small_payload_sizes_count_as_512(self, responder: Responder) -> None:
        response = ask(responder, "www.example.com.", use_edns=0, payload=100)
        assert not response.flags & dns.flags.TC
        assert rdata_text(response) == {"www.example.com. A 192.0.2.80"}

    def test_tcp_gets_the_whole_rrset(self, responder: Responder) -> None:
        response = ask(responder, "big.example.com.", transport=Transport.TCP)
        assert not response.flags & dns.flags.TC
        assert len(response.answer[0]) == 100

    def test_optional_additional_data_is_dropped_before_truncating(self, tmp_path: Path) -> None:
        many_mx = "\n".join(f"@ MX {i} mx{i}\nmx{i} A 192.0.2.{i}" for i in range(1, 40))
        path = tmp_path / "mx.zone"
        path.write_text(
            "$ORIGIN mx.test.\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n" + many_mx
        )
        responder = Responder(load_zones([ZoneSettings(dns.name.from_text("mx.test."), path)]))
        response = ask(responder, "mx.test.", "MX", use_edns=0, payload=1232)
        assert not response.flags & dns.flags.TC
        assert len(response.answer[0]) == 39
        assert not response.additional


class TestDname:
    def test_dname_synthesises_a_cname_and_follows_it(self, responder: Responder) -> None:
        response = ask(responder, "x.old.example.com.")
        assert [rrset.rdtype for rrset in response.answer] == [
            dns.rdatatype.DNAME,
            dns.rdatatype.CNAME,
            dns.rdatatype.A,
        ]
        assert rdata_text(response) == {
            "old.example.com. DNAME new.example.com.",
            "x.old.example.com. CNAME x.new.example.com.",
            "x.new.example.com. A 192.0.2.8",
        }

    def test_the_dname_owner_itself_is_not_redirected(self, responder: Responder) -> None:
        response = ask(responder, "old.example.com.", "DNAME")
        assert rdata_text(response) == {"old.example.com. DNAME new.example.com."}

    def test_a_result_too_long_is_yxdomain(self, responder: Responder) -> None:
        response = ask(responder, "b" * 63 + ".far.example.com.")
        assert response.rcode() == dns.rcode.YXDOMAIN
        assert response.flags & dns.flags.AA
        assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.DNAME]


class TestAny:
    def test_udp_gets_one_rrset(self, responder: Responder) -> None:
        response = ask(responder, "www.example.com.", "ANY")
        assert rdata_text(response) == {"www.example.com. A 192.0.2.80"}

    def test_tcp_gets_every_rrset(self, responder: Responder) -> None:
        response = ask(responder, "www.example.com.", "ANY", transport=Transport.TCP)
        assert rdata_text(response) == {
            "www.example.com. A 192.0.2.80",
            "www.example.com. AAAA 2001:db8::80",
        }


class TestServerIdentity:
    @pytest.mark.parametrize(
        ("qname", "text"),
        [
            ("id.server.", "ns1.test"),
            ("hostname.bind.", "ns1.test"),
            ("version.bind.", "1.0"),
            ("version.server.", "1.0"),
        ],
    )
    def test_configured_chaos_names_answer(
        self, responder: Responder, qname: str, text: str
    ) -> None:
        response = ask(responder, qname, "TXT", rdclass=dns.rdataclass.CH)
        assert response.rcode() == dns.rcode.NOERROR
        assert not response.flags & dns.flags.AA
        [txt] = response.answer
        assert txt.rdclass == dns.rdataclass.CH
        assert [rdata.strings for rdata in txt] == [(text.encode(),)]

    def test_unconfigured_chaos_names_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "z.zone"
        path.write_text("$ORIGIN z.test.\n@ 60 SOA ns hm 1 1 1 1 1\n@ 60 NS ns\n")
        anonymous = Responder(load_zones([ZoneSettings(dns.name.from_text("z.test."), path)]))
        response = ask(anonymous, "version.bind.", "TXT", rdclass=dns.rdataclass.CH)
        assert response.rcode() == dns.rcode.REFUSED

    def test_nsid_only_when_asked(self, responder: Responder) -> None:
        nsid = dns.edns.GenericOption(dns.edns.NSID, b"")
        asked = ask(responder, "www.example.com.", use_edns=0, options=[nsid])
        assert [(option.otype, option.to_wire()) for option in asked.options] == [
            (dns.edns.NSID, b"ns1")
        ]
        assert not ask(responder, "www.example.com.", use_edns=0).options


def test_do_and_cd_are_copied_and_ad_is_not_set(responder: Responder) -> None:
    query = dns.message.make_query("www.example.com.", "A", want_dnssec=True)
    query.flags |= dns.flags.CD | dns.flags.AD
    wire = responder.answer(query.to_wire(), Transport.UDP)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.ednsflags & dns.flags.DO
    assert response.flags & dns.flags.CD
    assert not response.flags & dns.flags.AD


def test_a_question_section_too_big_to_echo_leaves_the_header(responder: Responder) -> None:
    """Found by the fuzzer: three 250-byte names asked at once cannot be echoed in 512 bytes."""
    long_name = ".".join(["a" * 62] * 4) + "."
    query = dns.message.make_query(long_name, "A")
    query.question = query.question * 3
    wire = responder.answer(query.to_wire(), Transport.UDP)
    assert wire is not None
    assert len(wire) <= 512
    response = dns.message.from_wire(wire)
    assert response.rcode() == dns.rcode.FORMERR
    assert response.id == query.id
