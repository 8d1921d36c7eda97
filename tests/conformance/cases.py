"""The table of questions asked to both servers, by category.

Each category names the rule it exercises; the zone files under ``zones/`` carry a comment on
every name that says which rule it is there for. Generated rows (loops below) are combinations
that matter: the same name under every transport/EDNS size for truncation, the same shape in
each signed zone for DNSSEC.
"""

from __future__ import annotations

from dataclasses import replace

import dns.opcode

from .case import TCP, Case

EX = "example."
LONG_DNAME_QNAME = f"{'x' * 63}.{'y' * 63}.long.example."
"""Below ``long.example. DNAME`` (three 63-octet labels): the synthesized name would be 330
octets, more than 255, so the answer is YXDOMAIN with the DNAME (RFC 6672 §2.2)."""

SIGNED_ZONES = ("nsec.test.", "nsec3.test.", "optout.test.")

COOKIE = 10
ECS = 8
NSID = 3
PADDING = 12
KEEPALIVE = 11
EXPIRE = 9
UNKNOWN_OPTION = 65001


def _basic() -> list[Case]:
    c = "basic"
    rows = [Case(c, f"www.{EX}", t) for t in ("A", "AAAA", "TXT")]
    rows += [Case(c, EX, t) for t in ("SOA", "NS", "MX", "TXT")]
    rows += [
        Case(c, "mail.example.", "A"),
        Case(c, "mail.example.", "AAAA"),
        Case(c, "short.example.", "A", note="an RRset with its own TTL"),
        Case(c, "WwW.ExAmPlE.", "A", note="the question's letter case must come back as sent"),
        Case(c, "EXAMPLE.", "SOA"),
        Case(c, "www.example.", "A", transport=TCP),
        Case(c, "www.example.", "A", edns=None),
        Case(c, "www.child.example.", "A"),
        Case(c, "www.child.example.", "AAAA"),
        Case(c, "child.example.", "MX"),
        Case(c, "child.example.", "SOA"),
        Case(c, "ns1.child.example.", "A", note="the child zone's own A, not the parent's glue"),
        Case(c, "www.example.net.", "A", note="no hosted zone: REFUSED"),
        Case(c, ".", "SOA", note="the root is not hosted"),
        Case(c, "test.", "SOA", note="a parent of hosted zones that is not hosted itself"),
        Case(c, "www.example.", 65280, note="an unknown type: NODATA"),
        Case(c, "_sip._tcp.example.", "SRV"),
        Case(c, "www.nsec.test.", "A", note="signed zone without DO: no DNSSEC records"),
    ]
    return rows


def _negative() -> list[Case]:
    c = "negative"
    rows = [Case(c, "nothere.example.", t) for t in ("A", "AAAA", "MX", "TXT", "SOA", "NS")]
    rows += [
        Case(c, "a.b.nothere.example.", "A"),
        Case(c, "NoThErE.example.", "A"),
        Case(c, "foo.www.example.", "A", note="below an existing leaf"),
        Case(c, "www.example.", "MX", note="NODATA"),
        Case(c, "txtonly.example.", "A"),
        Case(c, EX, "A", note="NODATA at the apex"),
        Case(c, EX, "CAA"),
        Case(c, "ns1.example.", "MX"),
        Case(c, "nothere.child.example.", "A", note="SOA TTL 60 < MINIMUM 600: TTL 60"),
        Case(c, "www.child.example.", "TXT", note="NODATA in the child, SOA TTL 60"),
        Case(c, "nothere.example.", "A", transport=TCP),
        Case(c, "nothere.example.", "A", edns=None),
        Case(c, "www.example.", "MX", edns=None),
        Case(c, "nothere.nsec.test.", "A", note="signed zone without DO: SOA only"),
    ]
    return rows


def _ent() -> list[Case]:
    c = "ent"
    rows = [Case(c, "ent.example.", t) for t in ("A", "TXT", "NS", "DS", "ANY")]
    rows += [
        Case(c, "c.ent.example.", "A"),
        Case(c, "b.c.ent.example.", "A"),
        Case(c, "b.c.ent.example.", "AAAA"),
        Case(c, "a.b.c.ent.example.", "A"),
        Case(c, "x.ent.example.", "A", note="below an ENT: NXDOMAIN"),
        Case(c, "x.c.ent.example.", "A"),
        Case(c, "EnT.example.", "A"),
        Case(c, "ent.example.", "A", edns=None),
    ]
    return rows


def _cname() -> list[Case]:
    c = "cname"
    rows = [Case(c, "cname.example.", t) for t in ("A", "AAAA", "TXT", "MX", "CNAME", "ANY")]
    rows += [Case(c, "chain1.example.", t) for t in ("A", "AAAA", "CNAME")]
    rows += [
        Case(c, "chain2.example.", "A"),
        Case(c, "chain3.example.", "A"),
        Case(c, "tochild.example.", "A", note="into another hosted zone"),
        Case(c, "tochild.example.", "AAAA"),
        Case(c, "outside.example.", "A", note="out of every hosted zone"),
        Case(c, "dangling.example.", "A", note="target does not exist: NXDOMAIN, RFC 6604"),
        Case(c, "dangling.example.", "CNAME"),
        Case(c, "loop1.example.", "A"),
        Case(c, "loop2.example.", "AAAA"),
        Case(c, "self.example.", "A"),
        Case(c, "todeleg.example.", "A", note="target below a zone cut: CNAME + referral"),
        Case(c, "towild.example.", "A"),
        Case(c, "towild.example.", "TXT"),
        Case(c, "todname.example.", "A", note="target synthesized by a DNAME"),
        Case(c, "toent.example.", "A", note="target is an empty non-terminal"),
        Case(c, "totxtonly.example.", "A"),
        Case(c, "totxtonly.example.", "TXT"),
        Case(c, "toapex.example.", "SOA"),
        Case(c, "toapex.example.", "NS"),
        Case(c, "toapex.example.", "MX"),
        Case(c, "backup.child.example.", "A", note="child CNAME into the hosted parent"),
        Case(c, "ChAiN1.example.", "A"),
        Case(c, "chain1.example.", "A", transport=TCP),
        Case(c, "chain1.example.", "A", edns=None),
    ]
    return rows


def _referral() -> list[Case]:
    c = "referral"
    rows = [Case(c, "deleg.example.", t) for t in ("NS", "A", "DS", "SOA", "ANY", "TXT")]
    rows += [Case(c, "host.deleg.example.", t) for t in ("A", "AAAA", "NS", "DS", "MX")]
    rows += [
        Case(c, "ns1.deleg.example.", "A", note="a glue name: still a referral"),
        Case(c, "ns2.deleg.example.", "AAAA"),
        Case(c, "x.y.deleg.example.", "A"),
        Case(c, "foo.deleg.example.", "A", note="a wildcard below the cut is occluded"),
        Case(c, "deleg.example.", "A", transport=TCP),
        Case(c, "deleg.example.", "A", edns=None),
        Case(c, "DeLeG.example.", "A"),
        Case(c, "sibling.example.", "NS"),
        Case(c, "www.sibling.example.", "A", note="NS targets in the parent zone itself"),
        Case(c, "outdeleg.example.", "A"),
        Case(c, "www.outdeleg.example.", "A", note="no glue at all"),
        Case(c, "child.example.", "NS", note="hosted child: its own apex NS, authoritative"),
        Case(c, "child.example.", "A"),
        Case(c, "child.example.", "DS", note="DS is the parent's data (RFC 4035 §3.1.4.1)"),
        Case(c, "CHILD.example.", "DS"),
        Case(c, "www.child.example.", "DS", note="no cut here: the child answers NODATA"),
        Case(c, "example.", "DS", note="apex DS, parent not hosted: the zone answers"),
        Case(c, "child.example.", "DS", do=True),
        Case(c, "child.example.", "SOA", transport=TCP),
        Case(c, "www.bigdeleg.example.", "A", edns=None, note="glue > 512: TC (RFC 9471)"),
        Case(c, "www.bigdeleg.example.", "A", payload=512),
        Case(c, "www.bigdeleg.example.", "A"),
        Case(c, "www.bigdeleg.example.", "A", transport=TCP),
        Case(c, "bigdeleg.example.", "NS", edns=None),
        Case(c, "sub.wd.example.", "A", note="a cut below a wildcard's parent"),
        Case(c, "x.sub.wd.example.", "A"),
        Case(c, "sub.wd.example.", "DS"),
    ]
    return rows


def _wildcard() -> list[Case]:
    c = "wildcard"
    rows = [Case(c, "foo.wild.example.", t) for t in ("A", "AAAA", "TXT", "MX", "ANY", "NS")]
    rows += [
        Case(c, "a.b.wild.example.", "A", note="several labels are synthesized too"),
        Case(c, "FoO.WiLd.example.", "A"),
        Case(c, "*.wild.example.", "A", note="the wildcard owner asked literally"),
        Case(c, "*.wild.example.", "MX"),
        Case(c, "exists.wild.example.", "A", note="an existing name blocks the wildcard"),
        Case(c, "exists.wild.example.", "TXT"),
        Case(c, "sub.exists.wild.example.", "A", note="closest encloser has no wildcard"),
        Case(c, "ent.wild.example.", "A", note="an ENT blocks the wildcard"),
        Case(c, "foo.ent.wild.example.", "A"),
        Case(c, "deep.ent.wild.example.", "A"),
        Case(c, "wild.example.", "A", note="the wildcard's parent is an ENT"),
        Case(c, "x.wcname.example.", "A", note="wildcard CNAME"),
        Case(c, "x.wcname.example.", "AAAA"),
        Case(c, "x.wcname.example.", "CNAME"),
        Case(c, "x.y.wcname.example.", "TXT"),
        Case(c, "x.wcout.example.", "A", note="wildcard CNAME out of zone"),
        Case(c, "foo.wd.example.", "A", note="wildcard beside a delegation"),
        Case(c, "foo.wmx.example.", "MX", note="synthesized MX: additional section"),
        Case(c, "foo.wmx.example.", "A", note="wildcard NODATA"),
        Case(c, "foo.wild.example.", "A", transport=TCP),
        Case(c, "foo.wild.example.", "A", edns=None),
    ]
    return rows


def _dname() -> list[Case]:
    c = "dname"
    rows = [Case(c, "dname.example.", t) for t in ("DNAME", "A", "ANY", "CNAME")]
    rows += [Case(c, "www.dname.example.", t) for t in ("A", "AAAA", "TXT", "CNAME")]
    rows += [
        Case(c, "host.dname.example.", "A"),
        Case(c, "nothere.dname.example.", "A", note="the synthesized target does not exist"),
        Case(c, "a.b.dname.example.", "A"),
        Case(c, "WwW.DnAmE.example.", "A"),
        Case(c, "www.dname2.example.", "A", note="DNAME onto a DNAME"),
        Case(c, "www.dchild.example.", "A", note="into the hosted child"),
        Case(c, "www.dout.example.", "A", note="out of every hosted zone"),
        Case(c, "x.dself.example.", "A", note="a DNAME onto itself"),
        Case(c, LONG_DNAME_QNAME, "A", note="synthesized name > 255 octets: YXDOMAIN"),
        Case(c, LONG_DNAME_QNAME, "A", transport=TCP),
        Case(c, "x.long.example.", "A", note="a short one under the same DNAME fits"),
        Case(c, "www.dname.example.", "A", transport=TCP),
        Case(c, "www.dname.example.", "A", edns=None),
    ]
    return rows


def _any() -> list[Case]:
    c = "any"
    names = (
        "www.example.",
        EX,
        "mail.example.",
        "nothere.example.",
        "ent.example.",
        "foo.wild.example.",
        "cname.example.",
        "dname.example.",
        "www.child.example.",
        "child.example.",
        "deleg.example.",
    )
    rows = [Case(c, name, "ANY") for name in names]
    rows += [
        Case(c, "www.example.", "ANY", transport=TCP, note="RFC 8482 §4.4: TCP may get all"),
        Case(c, EX, "ANY", transport=TCP),
        Case(c, "www.example.", "ANY", edns=None),
        Case(c, "www.nsec.test.", "ANY", do=True),
        Case(c, "nsec.test.", "ANY", do=True),
    ]
    return rows


def _classes() -> list[Case]:
    c = "class"
    rows = [
        Case(c, name, "TXT", "CH")
        for name in ("version.bind.", "version.server.", "id.server.", "hostname.bind.")
    ]
    rows += [
        Case(c, "authors.bind.", "TXT", "CH"),
        Case(c, "version.bind.", "A", "CH"),
        Case(c, "version.bind.", "TXT", "CH", transport=TCP),
        Case(c, "version.bind.", "TXT", "CH", edns=None),
        Case(c, "version.bind.", "TXT", "IN"),
        Case(c, "www.example.", "A", "CH"),
        Case(c, "www.example.", "A", "HS"),
        Case(c, "www.example.", "A", "ANY", note="QCLASS * (RFC 1035 §3.2.5)"),
        Case(c, EX, "SOA", "ANY"),
        Case(c, "www.example.", "A", "NONE"),
        Case(c, "www.example.", "A", 0),
        Case(c, "www.example.", "A", 65280),
    ]
    # The same questions to the pair that is configured to tell its identity and version.
    identity = [
        Case(c, name, qtype, qclass, profile="identity")
        for name in ("version.bind.", "version.server.", "id.server.", "hostname.bind.")
        for qtype, qclass in (("TXT", "CH"), ("A", "CH"), ("ANY", "CH"), ("TXT", "IN"))
    ]
    identity += [
        Case(c, "authors.bind.", "TXT", "CH", profile="identity"),
        Case(c, "VeRsIoN.BiNd.", "TXT", "CH", profile="identity"),
        Case(c, "version.bind.", "TXT", "CH", transport=TCP, profile="identity"),
        Case(c, "id.server.", "TXT", "CH", edns=None, profile="identity"),
        Case(c, "x.version.bind.", "TXT", "CH", profile="identity"),
        Case(c, "bind.", "TXT", "CH", profile="identity"),
        Case(c, "www.example.", "A", profile="identity", note="IN is not affected"),
    ]
    return rows + identity


def _additional() -> list[Case]:
    c = "additional"
    rows = [
        Case(c, EX, "NS"),
        Case(c, EX, "MX"),
        Case(c, "mxin.example.", "MX"),
        Case(c, "mxout.example.", "MX"),
        Case(c, "mxdeleg.example.", "MX", note="target below a cut: glue, not authoritative"),
        Case(c, "mxchild.example.", "MX", note="target in another hosted zone"),
        Case(c, "mxnoaddr.example.", "MX"),
        Case(c, "_sip._tcp.example.", "SRV"),
        Case(c, "_sip._udp.example.", "SRV"),
        Case(c, "mxmany.example.", "MX", edns=None, note="additional does not fit: no TC"),
        Case(c, "mxmany.example.", "MX", payload=512),
        Case(c, "mxmany.example.", "MX"),
        Case(c, "mxmany.example.", "MX", transport=TCP),
        Case(c, "child.example.", "MX"),
        Case(c, "child.example.", "NS"),
        Case(c, "foo.wmx.example.", "MX"),
        Case(c, EX, "NS", edns=None),
        Case(c, EX, "NS", transport=TCP),
    ]
    return rows


def _header() -> list[Case]:
    c = "header"
    www = "www.example."
    soa = {"qname": EX, "qtype": "SOA"}
    return [
        Case(c, www, "A", rd=True),
        Case(c, www, "A", rd=False),
        Case(c, www, "A", cd=True),
        Case(c, www, "A", ad=True),
        Case(c, www, "A", rd=True, cd=True, ad=True),
        Case(c, "nothere.example.", "A", rd=True),
        Case(c, "www.nsec.test.", "A", cd=True, do=True),
        Case(c, www, "A", raw="qr", note="QR=1: never answered"),
        Case(c, www, "A", raw="qr", transport=TCP),
        Case(c, www, "A", raw="qdcount0", edns=None, note="no question: FORMERR"),
        Case(c, www, "A", raw="qdcount0"),
        Case(c, www, "A", raw="qdcount2", edns=None),
        Case(c, www, "A", raw="qdcount2"),
        Case(c, www, "A", raw="qdcount2", transport=TCP),
        Case(c, www, "A", raw="short-header", note="less than a header: nothing to answer"),
        Case(c, www, "A", raw="cut-question", note="QDCOUNT=1 but the question is cut"),
        Case(c, www, "A", raw="trailing-garbage"),
        Case(c, www, "A", raw="z-bit", note="the reserved Z bit set in the query"),
        Case(c, www, "A", raw="tc-in-query"),
        Case(c, www, "A", raw="aa-in-query"),
        Case(c, www, "A", raw="answer-in-query", note="ANCOUNT=1 in a query"),
        Case(c, www, "A", opcode=dns.opcode.IQUERY, note="IQUERY: obsolete (RFC 3425)"),
        Case(c, www, "A", opcode=dns.opcode.STATUS),
        Case(c, www, "A", opcode=3, note="an unassigned opcode"),
        Case(c, **soa, opcode=dns.opcode.NOTIFY),
        Case(c, **soa, opcode=dns.opcode.UPDATE),
        Case(c, **soa, opcode=6, note="DSO (RFC 8490) is TCP only"),
        Case(c, www, "A", opcode=15),
        Case(c, www, "A", opcode=dns.opcode.IQUERY, edns=None),
        Case(c, "nothere.example.", "A", opcode=dns.opcode.STATUS, transport=TCP),
    ]


def _meta() -> list[Case]:
    c = "meta"
    rows = [Case(c, EX, t) for t in ("AXFR", "IXFR")]
    rows += [Case(c, EX, t, transport=TCP) for t in ("AXFR", "IXFR")]
    rows += [Case(c, "www.example.", t) for t in ("MAILA", "MAILB", "OPT", "TSIG", "TKEY", 0)]
    rows += [
        Case(c, "child.example.", "AXFR", transport=TCP),
        Case(c, "nothere.example.", "MAILB"),
        Case(c, "www.example.", "TSIG", edns=None),
        Case(c, "www.example.", 128, note="TYPE128 (NXNAME, RFC 9824) in the meta range"),
        Case(c, "www.example.", "ANY", "CH"),
        Case(c, "www.example.net.", "AXFR", transport=TCP),
    ]
    return rows


def _edns() -> list[Case]:
    c = "edns"
    www = "www.example."
    rows = [Case(c, www, "A", payload=size) for size in (0, 100, 511, 512, 1232, 1400, 4096)]
    rows += [
        Case(c, www, "A", edns=1, note="unknown EDNS version: BADVERS with OPT version 0"),
        Case(c, www, "A", edns=255),
        Case(c, "nothere.example.", "A", edns=1),
        Case(c, www, "A", edns=1, transport=TCP),
        Case(c, www, "A", options=((UNKNOWN_OPTION, b"\x01\x02"),), note="ignored"),
        Case(c, www, "A", options=((UNKNOWN_OPTION, b""),)),
        Case(c, www, "A", ednsflags=0x4000, note="unknown flag bits are not echoed"),
        Case(c, www, "A", ednsflags=0x0001),
        Case(c, www, "A", raw="two-opt", note="two OPT RRs: FORMERR (RFC 6891 §6.1.1)"),
        Case(c, www, "A", raw="opt-nonroot", note="OPT owner must be root: FORMERR"),
        Case(c, www, "A", raw="opt-in-answer"),
        Case(c, www, "A", raw="opt-extended-rcode", note="extended RCODE bits set in a query"),
        Case(c, www, "A", do=True, note="DO on an unsigned zone"),
        Case(c, "nothere.example.", "A", do=True),
        Case(c, www, "A", options=((NSID, b""),), note="NSID asked, none configured"),
        Case(c, www, "A", options=((COOKIE, b"\x01" * 8),), note="a client cookie"),
        Case(c, www, "A", options=((COOKIE, b"\x01" * 7),), note="7 octets: FORMERR"),
        Case(c, www, "A", options=((COOKIE, b"\x01" * 12),), note="server cookie < 8: FORMERR"),
        Case(c, www, "A", options=((COOKIE, b"\x01" * 41),), note="too long: FORMERR"),
        Case(c, www, "A", options=((COOKIE, b"\x01" * 16),), note="unknown server cookie"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00011800c00002")),), note="valid ECS"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00032000c0000201")),), note="family 3"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00012100c000020101")),), note="/33"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00011800c0000201")),), note="too long"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00011800c00003ff")),), note="bits set"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("00011810c00002")),), note="scope > 0"),
        Case(c, www, "A", options=((ECS, bytes.fromhex("0001")),), note="truncated"),
        Case(c, www, "A", options=((PADDING, b"\x00" * 16),)),
        Case(c, www, "A", options=((KEEPALIVE, b""),), note="keepalive over UDP (RFC 7828)"),
        Case(c, www, "A", options=((KEEPALIVE, b""),), transport=TCP),
        Case(c, www, "A", options=((EXPIRE, b""),)),
        Case(c, www, "A", do=True, transport=TCP),
        Case(c, www, "A", options=((NSID, b""), (UNKNOWN_OPTION, b"x")), transport=TCP),
    ]
    # NSID (RFC 5001) where both servers are configured with the same one.
    rows += [
        Case(c, www, "A", options=((NSID, b""),), profile="identity"),
        Case(c, www, "A", options=((NSID, b""),), transport=TCP, profile="identity"),
        Case(c, "nothere.example.", "A", options=((NSID, b""),), profile="identity"),
        Case(c, "www.example.net.", "A", options=((NSID, b""),), profile="identity"),
        Case(c, www, "A", edns=1, options=((NSID, b""),), profile="identity"),
        Case(c, www, "A", profile="identity", note="no NSID asked: none given"),
        Case(c, www, "A", options=((NSID, b"\x01\x02"),), profile="identity"),
    ]
    return rows


def _truncation() -> list[Case]:
    c = "truncation"
    rows: list[Case] = []
    sizes: tuple[int | None, ...] = (None, 512, 800, 1000, 1232, 4096)
    for qname, qtype in (
        ("big.example.", "TXT"),
        ("text.example.", "TXT"),
        ("mid.example.", "A"),
        ("mid6.example.", "AAAA"),
    ):
        for size in sizes:
            if size is None:
                rows.append(Case(c, qname, qtype, edns=None))
            else:
                rows.append(Case(c, qname, qtype, payload=size))
        rows.append(Case(c, qname, qtype, transport=TCP))
        rows.append(Case(c, qname, qtype, transport=TCP, edns=None))
    rows += [
        Case(c, "BiG.example.", "TXT", edns=None, note="TC keeps the question's case"),
        Case(c, "big.example.", "TXT", do=True, payload=4096),
        Case(c, "www.nsec3.test.", "A", do=True, edns=0, payload=512),
        Case(c, "nothere.nsec3.test.", "A", do=True, payload=512, note="big NXDOMAIN proof"),
        Case(c, "nothere.nsec3.test.", "A", do=True, transport=TCP),
    ]
    return rows


def _dnssec_zone(zone: str) -> list[Case]:
    """The same questions in each signed zone, with DO (and a few without, which must be plain)."""
    c = "dnssec"
    rows = [
        Case(c, f"www.{zone}", "A", do=True),
        Case(c, f"www.{zone}", "AAAA", do=True),
        Case(c, zone, "SOA", do=True),
        Case(c, zone, "DNSKEY", do=True),
        Case(c, zone, "NS", do=True),
        Case(c, zone, "MX", do=True),
        Case(c, f"nothere.{zone}", "A", do=True, note="NXDOMAIN proof"),
        Case(c, f"a.b.nothere.{zone}", "A", do=True),
        Case(c, f"www.{zone}", "MX", do=True, note="NODATA proof"),
        Case(c, f"foo.wild.{zone}", "A", do=True, note="wildcard answer + no closer match"),
        Case(c, f"foo.wild.{zone}", "AAAA", do=True, note="wildcard NODATA"),
        Case(c, f"exists.wild.{zone}", "A", do=True),
        Case(c, f"b.ent.{zone}", "A", do=True, note="ENT NODATA"),
        Case(c, f"secure.{zone}", "A", do=True, note="referral with DS"),
        Case(c, f"x.secure.{zone}", "A", do=True),
        Case(c, f"secure.{zone}", "DS", do=True),
        Case(c, f"insecure.{zone}", "A", do=True, note="referral without DS: proof"),
        Case(c, f"insecure.{zone}", "DS", do=True),
        Case(c, f"insecure2.{zone}", "A", do=True),
        Case(c, f"cname.{zone}", "A", do=True),
        Case(c, f"dangling.{zone}", "A", do=True),
        Case(c, f"wcname.{zone}", "A", do=True, note="CNAME onto a wildcard"),
        Case(
            c, f"host.dname.{zone}", "A", do=True, note="DNAME: the synthesized CNAME is unsigned"
        ),
        Case(c, f"nothere.dname.{zone}", "A", do=True),
        Case(c, f"x.wcn.{zone}", "A", do=True, note="wildcard CNAME, signed"),
        Case(c, f"x.wcn.{zone}", "TXT", do=True),
        Case(c, f"outside.{zone}", "A", do=True, note="CNAME out of zone, signed"),
        Case(c, f"x.secure.{zone}", "DS", do=True, note="DS below a cut: referral"),
        Case(c, f"ns.secure.{zone}", "A", do=True, note="a glue name: referral"),
        Case(c, f"secure.{zone}", "NS", do=True),
        Case(c, f"insecure.{zone}", "NS", do=True),
        Case(c, zone, "DS", do=True, note="DS at an apex whose parent is not hosted"),
        Case(c, f"ent.{zone}", "A", do=True, note="ENT two levels up"),
        Case(c, f"*.wild.{zone}", "A", do=True, note="the wildcard owner asked literally"),
        Case(c, f"www.{zone}", "RRSIG", do=True),
        Case(c, f"www.{zone}", "NSEC", do=True),
        Case(c, zone, "NSEC3PARAM", do=True),
        Case(c, f"zz.{zone}", "A", do=True),
        # Without DO: none of the DNSSEC records beyond the asked type (RFC 4035 §3.1).
        Case(c, f"www.{zone}", "A"),
        Case(c, f"nothere.{zone}", "A"),
        Case(c, f"foo.wild.{zone}", "A"),
        Case(c, f"secure.{zone}", "A"),
        Case(c, f"insecure.{zone}", "A"),
        Case(c, zone, "DNSKEY"),
        Case(c, f"www.{zone}", "RRSIG", note="RRSIG asked explicitly, no DO"),
        Case(c, f"secure.{zone}", "DS"),
    ]
    return rows


def _dnssec() -> list[Case]:
    rows = [case for zone in SIGNED_ZONES for case in _dnssec_zone(zone)]
    # RSASHA256-2048 signatures make most NSEC3 proofs larger than 1232 octets (so UDP gets
    # TC): each DO question of nsec3.test. is asked over TCP too, where the proof is whole.
    rows += [
        replace(case, transport=TCP)
        for case in _dnssec_zone("nsec3.test.")
        if case.do and case.transport != TCP
    ]
    rows += [
        Case("dnssec", "www.nsec.test.", "A", do=True, transport=TCP),
        Case("dnssec", "foo.wild.optout.test.", "A", do=True, cd=True),
        Case("dnssec", "NoThErE.nsec.test.", "A", do=True),
    ]
    return rows


CASES: list[Case] = [
    *_basic(),
    *_negative(),
    *_ent(),
    *_cname(),
    *_referral(),
    *_wildcard(),
    *_dname(),
    *_any(),
    *_classes(),
    *_additional(),
    *_header(),
    *_meta(),
    *_edns(),
    *_truncation(),
    *_dnssec(),
]
"""Every question of the suite, in table order."""

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(case.category for case in CASES))
