"""The fast zone file reader against dnspython's, which is the reference.

Every zone file of the repository and generated zones using every syntax feature the fast reader
claims must compile to exactly what dnspython's reader makes of them: the same owners (letter case
included), rdatasets in the same order, the same TTLs and rdata, and the same facts a lookup
relies on (existing names, cuts, DNAMEs, NSEC and NSEC3 owners). What the fast reader does not
claim must make it step aside (``Unsupported``), never guess.
"""

from __future__ import annotations

import random
from pathlib import Path

import dns.name
import dns.zone
import pytest

from nameserver import zonefile
from nameserver.config import ZoneSettings
from nameserver.zones import read_reference
from nameserver.zonestore import ZoneData

REPO = Path(__file__).resolve().parent.parent
REPO_ZONES = sorted(
    [
        *(REPO / "zones").glob("*.zone"),
        *(REPO / "tests" / "integration" / "zones").glob("*.zone"),
        *(REPO / "tests" / "conformance" / "zones").glob("*.zone"),
        *(REPO / "tests" / "conformance" / "zones").glob("*.zone.signed"),
    ]
)
EXAMPLE = dns.name.from_text("example.com.")

Dump = dict[str, list[tuple[int, int, int, list[bytes]]]]


def dump_reference(zone: dns.zone.Zone) -> Dump:
    return {
        name.to_text(): [
            (rdataset.rdtype, rdataset.covers, rdataset.ttl, [rd.to_wire() for rd in rdataset])
            for rdataset in node
        ]
        for name, node in zone.items()
    }


def dump_compiled(data: ZoneData) -> Dump:
    dumped = {}
    for key in data.records:
        node = data.node(key)
        assert node is not None
        dumped[data.name(key).to_text()] = [
            (rdataset.rdtype, rdataset.covers, rdataset.ttl, [rd.to_wire() for rd in rdataset])
            for rdataset in node
        ]
    return dumped


def existing(zone: dns.zone.Zone) -> set[bytes]:
    """Owners and their ancestors up to the origin, NSEC3-only owners left out: what
    ``ZoneIndex`` computed from dnspython's zone before zones were compiled."""
    names = set()
    for name, node in zone.items():
        covered = {rds.covers if rds.rdtype == dns.rdatatype.RRSIG else rds.rdtype for rds in node}
        if covered == {dns.rdatatype.NSEC3}:
            continue
        while name != zone.origin:
            names.add(name.to_wire().lower())
            name = name.parent()
    return names | {zone.origin.to_wire().lower()}


def assert_same(path: Path, origin: dns.name.Name) -> ZoneData:
    data = path.read_bytes()
    fast, sources = zonefile.read(path, data, origin)
    reference, included = read_reference(ZoneSettings(origin, path), data)
    assert [name for name, _ in sources] == [str(path), *included]
    assert dump_compiled(fast) == dump_reference(reference)
    assert fast.to_marshal() == ZoneData.from_zone(reference).to_marshal()
    assert fast.existing_wire == existing(reference)
    assert fast.count == sum(len(rds) for _, rds in reference.iterate_rdatasets())
    return fast


def origin_of(path: Path) -> dns.name.Name:
    return dns.name.from_text(path.name.removesuffix(".signed").removesuffix(".zone"))


@pytest.mark.parametrize("path", REPO_ZONES, ids=lambda path: str(path.relative_to(REPO)))
def test_every_zone_file_of_the_repository(path: Path) -> None:
    assert_same(path, origin_of(path))


def test_the_repository_has_signed_zones_to_compare() -> None:
    signed = [assert_same(path, origin_of(path)) for path in REPO_ZONES if path.suffix == ".signed"]
    assert any(data.nsec for data in signed)
    assert any(data.nsec3 for data in signed)


# Every feature the fast reader claims, with the tricky spellings of each.
KITCHEN_SINK = r"""; a comment line
$ORIGIN example.com.
$TTL 1h30m
@   IN  SOA ns1 hostmaster.example.com. (
            2026120201 ; serial
            7200 3600
            1209600 300 )
    IN  NS  ns1
    NS  NS2.Example.COM.
@ 600 IN MX 10 mail
@ IN 600 MX 20 mail.example.com.
  TXT "v=spf1 -all" "second ; not a comment" "quote \" inside"
<TAB>TXT<TAB>( "split" ; a comment inside parentheses
<TAB>      "over lines" )

ns1 A 192.0.2.53
ns1 AAAA 2001:DB8:0000::0053
NS2 A 192.0.2.54
www 300 A 192.0.2.80
WWW IN 60 A 192.0.2.81
www A 192.0.2.80
www AAAA ::ffff:192.0.2.80
www AAAA 2001:db8::80
mail A 192.0.2.25
Mail.Example.Com. AAAA 2001:db8::25
alias CNAME www
other CNAME Www.Example.Com.
other CNAME www.example.com.
ptr PTR www
_sip._tcp SRV 0 5 5060 sip
sip A 192.0.2.60
@ CAA 0 issue "ca.example.net"
deep.ent.chain A 192.0.2.99
*.wild TXT "wildcard"
sub NS ns.sub
ns.sub A 192.0.2.70
sub DS 12345 13 2 ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789
dn DNAME target.example.net.
esc\.aped TXT "an escaped dot"
bücher A 192.0.2.77
www A 192.0.2.82 ; back to an earlier owner
$ORIGIN lab.example.com.
host A 192.0.2.1
@ TXT lab
$INCLUDE hosts.inc
$INCLUDE hosts.inc other.example.com.
after A 192.0.2.2
$TTL 120
late A 192.0.2.3
"""

HOSTS_INC = """\
$TTL 77
inc A 192.0.2.100
    AAAA 2001:db8::100
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_every_supported_feature(tmp_path: Path) -> None:
    write(tmp_path / "hosts.inc", HOSTS_INC)
    zone_file = write(tmp_path / "z", KITCHEN_SINK.replace("<TAB>", "\t"))
    compiled = assert_same(zone_file, EXAMPLE)
    assert compiled.cased  # owners written in capitals keep them
    assert dns.name.from_text("chain.example.com.").to_wire() in compiled.ents


def test_dnssec_types_as_signers_write_them(tmp_path: Path) -> None:
    signed = (REPO / "tests" / "conformance" / "zones" / "nsec3.test.zone.signed").read_text()
    zone_file = write(tmp_path / "z", signed.replace("\t", "  "))
    assert_same(zone_file, dns.name.from_text("nsec3.test."))


def test_soa_minimum_is_the_default_ttl_without_ttl_directive(tmp_path: Path) -> None:
    text = "@ SOA ns hm 1 2 3 4 555\n@ NS ns\nns 60 A 192.0.2.1\nother A 192.0.2.2\n"
    compiled = assert_same(write(tmp_path / "z", text), EXAMPLE)
    assert compiled.count == 4


PIECES = [
    "{owner} A 192.0.2.{m}",
    "{owner} {ttl} AAAA 2001:db8::{n:x}",
    "{owner} IN {ttl} MX {n} mx{n}",
    '{owner} {ttl} IN TXT "t{n}" ( "more" )',
    "{owner} NS ns{n}.example.net.",
    "{owner} PTR host{n}.example.com.",
    "{owner} SRV 1 2 {n} srv{n}",
    "    A 192.0.2.{m}",
    "{owner} A 10.{m}.0.1",
    "{owner} AAAA 2001:DB8:0::{n}",
    '{owner} CAA 0 issue "ca{n}.example"',
]
OWNERS = ["a", "B", "a.b", "A.B", "@", "c.d.e", "x.example.com.", "*.w", "n{n}"]


@pytest.mark.parametrize("seed", range(20))
def test_random_zones(tmp_path: Path, seed: int) -> None:
    """Random mixes of the pieces, owners repeating out of order and in other letter case;
    whatever the fast reader accepts must be what dnspython reads, and it must accept most."""
    rng = random.Random(seed)
    lines = ["$TTL 300", "@ SOA ns hm 1 2 3 4 5", "@ NS ns", "ns A 192.0.2.1"]
    for n in range(200):
        owner = rng.choice(OWNERS).format(n=n)
        ttl = rng.choice(["60", "1h", "2D", "0"])
        lines.append(rng.choice(PIECES).format(owner=owner, ttl=ttl, n=n, m=n % 250))
    zone_file = write(tmp_path / "z", "\n".join(lines) + "\n")
    try:
        assert_same(zone_file, EXAMPLE)
    except zonefile.Unsupported:
        pytest.fail("the fast reader refused a zone of supported syntax")


@pytest.mark.parametrize(
    "record",
    [
        "www A 192.0.2",
        "www A 192.0.2.1 192.0.2.2",
        "www BOGUS 1",
        "www CH A 192.0.2.1",
        "www CLASS1 A 192.0.2.1",
        "www SOA ns hostmaster 1 2 3 4 5",
        "www.example.net. A 192.0.2.1",
        "www A 192.0.2.1\nwww CNAME ns",
        "ftp CNAME ns\nftp CNAME www",
        "$GENERATE 1-3 host$ A 192.0.2.$",
        "$UNICODE 2008",
        "$INCLUDE absent.inc",
        "www 4294967296 A 192.0.2.1",
        "www 1x A 192.0.2.1",
        'txt TXT (\n  "one"\n',
        'txt TXT "unterminated',
        "www A 192.0.2.1\r",
        "www\u00a0A 192.0.2.1",
        "  $TTL 5",
        "( www A 192.0.2.1 )",
        '"quoted" TXT "not an owner"',
    ],
)
def test_what_the_fast_reader_does_not_vouch_for(tmp_path: Path, record: str) -> None:
    apex = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n"
    zone_file = write(tmp_path / "z", apex + record + "\n")
    with pytest.raises(zonefile.Unsupported):
        zonefile.read(zone_file, zone_file.read_bytes(), EXAMPLE)


@pytest.mark.parametrize(
    "missing", ["@ SOA ns hm 1 2 3 4 5\n", "@ NS ns\n"], ids=["no SOA", "no NS"]
)
def test_an_apex_without_soa_or_ns_is_not_vouched_for(tmp_path: Path, missing: str) -> None:
    text = "$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n".replace(missing, "")
    zone_file = write(tmp_path / "z", text)
    with pytest.raises(zonefile.Unsupported):
        zonefile.read(zone_file, zone_file.read_bytes(), EXAMPLE)


def test_not_utf8_is_not_vouched_for(tmp_path: Path) -> None:
    zone_file = tmp_path / "z"
    zone_file.write_bytes(b'$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\ntxt TXT "caf\xe9"\n')
    with pytest.raises(zonefile.Unsupported):
        zonefile.read(zone_file, zone_file.read_bytes(), EXAMPLE)
