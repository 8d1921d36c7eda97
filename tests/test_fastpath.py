"""The fast paths give dnspython's answers, byte for byte.

:meth:`Responder.respond` answers from its cache or renders plain answers itself (NXDOMAIN,
NODATA, REFUSED, records without names); :meth:`Responder.respond_plain` always goes through
dnspython. Every query here is asked both ways and the two responses must be identical. Cache
hits are provoked by asking each well-formed query again as other clients would: another ID,
another letter case (DNS 0x20), RD and CD flipped, another cookie. Spies on both paths prove
the fast ones were taken, so that these tests would notice if they silently stopped being used.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import pytest
from test_fuzz import PacketGenerator, write_fuzz_zones, zone_names

from nameserver import answercache
from nameserver.answercache import AnswerCache, Outcome
from nameserver.config import ServerSettings, ZoneSettings
from nameserver.lookup import IN, lower_wire
from nameserver.responder import Responder, Transport
from nameserver.wirequery import Shape, read_shape
from nameserver.zones import ZoneSet, load_zones

SEED = 0x0F45_7A7E
FUZZED_PACKETS = 10_000
TYPES = ("A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "DS", "SRV", "ANY", "RRSIG", "NSEC")
PAYLOADS = (None, 0, 512, 1232, 4096)
SIGNED_ZONES = ("nsec.test.", "nsec3.test.", "optout.test.")


class PlainSpy:
    """Counts the queries that reach dnspython's path of one responder."""

    def __init__(self, responder: Responder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        plain = responder._plain

        def counted(wire: bytes, transport: Transport) -> tuple[Outcome, bool]:
            self.calls += 1
            return plain(wire, transport)

        monkeypatch.setattr(responder, "_plain", counted)


class FastSpy:
    """Records the rcode of every answer the fast renderer of one responder gives."""

    def __init__(self, responder: Responder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rcodes: list[int] = []
        render = responder._fast.answer

        def counted(wire: bytes, shape: Shape) -> tuple[bytes, int, bool] | None:
            answer = render(wire, shape)
            if answer is not None:
                self.rcodes.append(answer[1])
            return answer

        monkeypatch.setattr(responder._fast, "answer", counted)


SETTINGS = ServerSettings(nsid="ns1.test", identity="ns1", version="1.0")


@pytest.fixture
def zones(tmp_path: Path) -> ZoneSet:
    return load_zones(write_fuzz_zones(tmp_path))


@pytest.fixture
def responder(zones: ZoneSet) -> Responder:
    return Responder(zones, SETTINGS)


@pytest.fixture
def reference(zones: ZoneSet) -> Responder:
    """A second responder on the same zones, whose plain path no spy watches."""
    return Responder(zones, SETTINGS)


def check(
    responder: Responder, reference: Responder, wire: bytes, transport: Transport
) -> Outcome | None:
    """Ask ``wire`` both ways; they must agree, whatever it is."""
    fast = responder.respond(wire, transport)
    plain = reference.respond_plain(wire, transport)
    assert fast == plain, f"{transport.value} query {wire.hex()}"
    return fast


def as_other_clients(wire: bytes, rng: random.Random) -> Iterator[bytes]:
    """``wire`` as other clients would send it: what must not change the answer changed."""
    shape = read_shape(wire)
    if shape is None:
        return
    query = bytearray(wire)
    query[0:2] = rng.randbytes(2)
    yield bytes(query)
    for position in range(12, shape.qname_end):
        if chr(query[position]).isalpha() and rng.random() < 0.5:
            query[position] ^= 0x20
    yield bytes(query)
    query[2] ^= 0x01  # RD
    query[3] ^= 0x10  # CD
    yield bytes(query)


def structured_queries(names: list[dns.name.Name], rng: random.Random) -> Iterator[bytes]:
    """Well-formed queries of every shape the fast paths accept, and some they do not."""
    for name in names:
        for qtype in rng.sample(TYPES, 4):
            payload = rng.choice(PAYLOADS)
            options: list[dns.edns.Option] = []
            if payload is not None and rng.random() < 0.3:
                options.append(dns.edns.CookieOption(rng.randbytes(8), b""))
            if payload is not None and rng.random() < 0.1:
                options.append(dns.edns.NSIDOption(b""))
            query = dns.message.make_query(
                name,
                qtype,
                use_edns=payload is not None,
                payload=payload or 0,
                want_dnssec=payload is not None and rng.random() < 0.3,
                options=options,
            )
            yield query.to_wire()


def nonexistent_names(responder: Responder, rng: random.Random, each: int) -> list[dns.name.Name]:
    """Random names below every hosted zone, and some below no hosted zone."""
    names = []
    for hosted in responder.zones:
        for _ in range(each):
            label = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789-", k=12))
            names.append(dns.name.from_text(label, hosted.origin))
    names += [dns.name.from_text(f"x{i}.nowhere.example.org.") for i in range(each)]
    return names


def test_structured_queries_and_their_variants(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    names = zone_names(responder.zones) + nonexistent_names(responder, rng, 20)
    spy = PlainSpy(responder, monkeypatch)
    asked = Counter[str]()
    for index, wire in enumerate(structured_queries(names, rng)):
        transport = (Transport.UDP, Transport.TCP)[index % 2]
        check(responder, reference, wire, transport)
        asked["first"] += 1
        for variant in as_other_clients(wire, rng):
            check(responder, reference, variant, transport)
            asked["variant"] += 1
    # The variants all hit the cache unless a DNAME answer kept the shape level out (its
    # bytes hold the question's letter case) or a cache level was emptied on reaching its
    # budget; many first questions are answered by the fast renderer.
    assert spy.calls < asked["first"], (spy.calls, asked)
    assert asked["variant"] > 2 * asked["first"]


def test_fuzzed_packets_and_their_variants(responder: Responder, reference: Responder) -> None:
    rng = random.Random(SEED)
    generator = PacketGenerator(SEED, zone_names(responder.zones))
    for index in range(FUZZED_PACKETS):
        wire = generator.packet()
        transport = (Transport.UDP, Transport.TCP)[index % 2]
        check(responder, reference, wire, transport)
        for variant in as_other_clients(wire, rng):
            check(responder, reference, variant, transport)


def test_nonexistent_names_never_reach_dnspython(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unique random names (the random subdomain attack) below unsigned zones, and names in no
    hosted zone, are answered by the fast renderer alone, with or without EDNS and DO."""
    rng = random.Random(SEED)
    unsigned = [
        name
        for name in nonexistent_names(responder, rng, 30)
        if not any(name.is_subdomain(dns.name.from_text(zone)) for zone in SIGNED_ZONES)
        and not name.is_subdomain(dns.name.from_text("fuzz.test."))  # wildcards, cuts
    ]
    spy = PlainSpy(responder, monkeypatch)
    rcodes = Counter[int]()
    for index, name in enumerate(unsigned):
        edns = (-1, 0)[index % 2]
        query = dns.message.make_query(name, "A", use_edns=edns, want_dnssec=index % 4 == 1)
        outcome = check(responder, reference, query.to_wire(), Transport.UDP)
        assert outcome is not None
        rcodes[outcome.rcode] += 1
    assert spy.calls == 0
    assert set(rcodes) == {dns.rcode.NXDOMAIN, dns.rcode.REFUSED}


def test_signed_zones_with_do_keep_dnspython_for_proofs(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = PlainSpy(responder, monkeypatch)
    for zone in SIGNED_ZONES:
        query = dns.message.make_query(f"nothing-here.{zone}", "A", want_dnssec=True)
        outcome = check(responder, reference, query.to_wire(), Transport.UDP)
        assert outcome is not None and outcome.rcode == dns.rcode.NXDOMAIN
    assert spy.calls == len(SIGNED_ZONES)


def test_a_repeated_question_is_rendered_once(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = PlainSpy(responder, monkeypatch)
    fast = FastSpy(responder, monkeypatch)
    for query_id, name in enumerate(("www.fuzz.test.", "WWW.Fuzz.Test.", "wWw.fUzZ.tEsT.")):
        query = dns.message.make_query(name, "A", use_edns=0)
        query.id = query_id
        query.flags = dns.flags.RD if query_id % 2 else 0
        outcome = check(responder, reference, query.to_wire(), Transport.UDP)
        assert outcome is not None
        assert dns.message.from_wire(outcome.wire).question[0].name.labels[0] == name[:3].encode()
    assert spy.calls + len(fast.rcodes) == 1


def test_a_full_cache_level_starts_again() -> None:
    cache = AnswerCache(budget=900)  # room for three small entries per level
    stored = []
    for index in range(4):
        query = dns.message.make_query(f"h{index}.example.", "A").to_wire()
        shape = read_shape(query)
        assert shape is not None
        cache.store(query, shape, Outcome(b"\0\0" + query[2:], 0, 1), case_free=True)
        stored.append((query, shape))
    assert len(cache.exact) == 1, "the fourth entry found the level full and emptied it"
    assert cache.shaped(*stored[0]) is None
    assert cache.shaped(*stored[3]) is not None


def offer_missing(cache: AnswerCache, query: bytes) -> None:
    """Hand the cache an NXDOMAIN answer to ``query``, as the responder does."""
    cache.store_nonexistent(query[2:], Outcome(b"\0\0" + query[2:], dns.rcode.NXDOMAIN, 1))


def keep_missing(cache: AnswerCache, query: bytes) -> None:
    """The answer about a missing name is kept when its query comes a second time."""
    offer_missing(cache, query)
    offer_missing(cache, query)


def test_a_missing_name_is_kept_when_it_comes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once, a query about a missing name is only remembered (a flood of random names
    stores no answers); seen again, its answer is kept. The memory of queries seen once
    starts over when full."""
    monkeypatch.setattr(answercache, "_SEEN_LIMIT", 2)
    cache = AnswerCache()
    first, second, third = (
        dns.message.make_query(f"m{index}.example.", "A").to_wire() for index in range(3)
    )
    offer_missing(cache, first)
    assert not cache.exact
    offer_missing(cache, first)
    assert set(cache.exact) == {first[2:]}
    offer_missing(cache, second)
    offer_missing(cache, third)  # two remembered: this one starts the memory over
    offer_missing(cache, second)
    assert set(cache.exact) == {first[2:]}, "second was forgotten, so seen once again"
    offer_missing(cache, second)
    assert set(cache.exact) == {first[2:], second[2:]}


def test_answers_about_missing_names_have_a_share_of_their_own() -> None:
    """A flood of random names fills and empties only its own share of the exact level: the
    answers for names that exist stay, and each missing name is kept for its own bytes."""
    cache = AnswerCache(budget=1_000_000, nonexistent_budget=900)  # room for three
    present = dns.message.make_query("www.example.", "A").to_wire()
    shape = read_shape(present)
    assert shape is not None
    cache.store(present, shape, Outcome(b"\0\0" + present[2:], 0, 1), case_free=True)
    missing = [dns.message.make_query(f"q{index}.example.", "A").to_wire() for index in range(4)]
    for query in missing:
        keep_missing(cache, query)
    assert set(cache.exact) == {present[2:], missing[3][2:]}, "the fourth emptied the share"
    assert cache.exact[missing[3][2:]] == (missing[3][2:], (dns.rcode.NXDOMAIN, 1))
    assert cache.shaped(present, shape) is not None
    assert cache.shaped(missing[3], read_shape(missing[3])) is None


def test_the_nonexistent_share_outlives_the_level_emptying_under_it() -> None:
    """When the exact level empties itself, the share's remembered keys are gone already;
    emptying the share later must not fail on them, nor remove what came after."""
    cache = AnswerCache(budget=900, nonexistent_budget=900)
    queries = [dns.message.make_query(f"h{index}.example.", "A").to_wire() for index in range(8)]
    for query in queries[:2]:
        keep_missing(cache, query)
    for query in queries[2:6]:  # the fourth of these finds the level full and empties it
        shape = read_shape(query)
        assert shape is not None
        cache.store(query, shape, Outcome(b"\0\0" + query[2:], 0, 1), case_free=True)
    for query in queries[6:]:  # the share, counting its two old entries, empties itself
        keep_missing(cache, query)
    assert set(cache.exact) == {queries[5][2:], queries[7][2:]}


def test_facts_are_shared_while_there_are_few(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every entry with the same (rcode, qtype) hands out one tuple, which metrics then count
    by identity; past the cap a combination gets a tuple of its own, equal but not kept."""
    monkeypatch.setattr(answercache, "_FACTS", {})
    monkeypatch.setattr(answercache, "_SHARED_FACTS", 2)
    first = answercache.shared_facts(0, 1)
    assert answercache.shared_facts(0, 1) is first
    cache = AnswerCache()
    query = dns.message.make_query("www.example.", "A").to_wire()
    shape = read_shape(query)
    assert shape is not None
    cache.store(query, shape, Outcome(b"\0\0" + query[2:], 0, 1), case_free=True)
    assert cache.exact[query[2:]][1] is first
    second = answercache.shared_facts(3, 28)
    assert answercache.shared_facts(3, 28) is second
    beyond = answercache.shared_facts(0, 99)
    assert beyond == (0, 99)
    assert answercache.shared_facts(0, 99) is not beyond
    assert len(answercache._FACTS) == 2


def test_negative_answers_below_the_soa_names(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast renderer keeps each zone's SOA record by the facts its compression
    depends on; a name below the SOA's MNAME or RNAME compresses differently from one of the
    same length elsewhere, and each must still get dnspython's bytes, in any order."""
    spy = PlainSpy(responder, monkeypatch)
    names: list[dns.name.Name] = []
    for hosted in responder.zones:
        if any(hosted.origin.to_text() == zone for zone in (*SIGNED_ZONES, "fuzz.test.")):
            continue
        soa = hosted.zone.node(lower_wire(hosted.origin)).find_rdataset(IN, dns.rdatatype.SOA)[0]
        for below in (soa.mname, soa.rname):
            if below.is_subdomain(hosted.origin) and below != hosted.origin:
                for prefix in ("x", "yy", "a.bc"):
                    name = dns.name.from_text(prefix, below)
                    # A name as long whose compression has nothing to share, asked first.
                    length = len(name.to_wire()) - len(hosted.origin.to_wire()) - 1
                    names += [dns.name.from_text("z" * length, hosted.origin), name]
    assert len(names) > 9, "some SOA names are below their zone's apex"
    for name in [*names, *reversed(names)]:
        for use_edns in (-1, 0):
            query = dns.message.make_query(name, "A", use_edns=use_edns)
            outcome = check(responder, reference, query.to_wire(), Transport.UDP)
            assert outcome is not None and outcome.rcode == dns.rcode.NXDOMAIN, name
    assert spy.calls == 0


def test_nodata_never_reaches_dnspython(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names that exist, asked for types they do not have (CAA, asked by every certificate
    authority, among them) are NODATA from the fast renderer, unless a CNAME, a zone cut
    or a DNAME makes them something else."""
    spy = PlainSpy(responder, monkeypatch)
    fast = FastSpy(responder, monkeypatch)
    asked = 0
    for hosted in responder.zones:
        if hosted.origin.to_text() in (*SIGNED_ZONES, "fuzz.test."):
            continue
        data = hosted.zone
        for key in data.existing_wire:
            name = dns.name.from_wire(key, 0)[0]
            below_obstruction = any(
                name.is_subdomain(dns.name.from_wire(other, 0)[0])
                for other in data.obstructions_wire
            )
            types = [rdtype for rdtype, *_ in data.encoded(key)]
            if below_obstruction or dns.rdatatype.CNAME in types:
                continue
            for qtype in ("CAA", "NAPTR", "TYPE65000", "HINFO"):
                if dns.rdatatype.from_text(qtype) in types:
                    continue
                query = dns.message.make_query(name, qtype, use_edns=asked % 2 - 1)
                outcome = check(responder, reference, query.to_wire(), Transport.UDP)
                assert outcome is not None and outcome.rcode == dns.rcode.NOERROR, name
                assert not dns.message.from_wire(outcome.wire).answer, name
                asked += 1
                query.id ^= 0xFFFF  # asked again: a NODATA is kept, unlike an NXDOMAIN
                check(responder, reference, query.to_wire(), Transport.UDP)
    assert asked > 20
    assert spy.calls == 0
    assert fast.rcodes == [dns.rcode.NOERROR] * asked, "each rendered once, then from the cache"


def test_records_without_names_never_reach_dnspython(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A, AAAA, TXT and the other types whose data hold no names are rendered from the
    compiled zone's bytes the first time they are asked (a big zone, a fresh reload), also in
    signed zones without DO; MX, NS and the like keep dnspython, which adds their targets'
    addresses."""
    spy = PlainSpy(responder, monkeypatch)
    fast = FastSpy(responder, monkeypatch)
    asked = Counter[str]()
    for hosted in responder.zones:
        data = hosted.zone
        for key in data.existing_wire:
            name = dns.name.from_wire(key, 0)[0]
            if any(
                name.is_subdomain(dns.name.from_wire(other, 0)[0])
                for other in data.obstructions_wire
            ):
                continue
            for rdtype, _covers, _ttl, records in data.encoded(key):
                if rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT):
                    continue
                before = (spy.calls, len(fast.rcodes))
                query = dns.message.make_query(name, rdtype, use_edns=sum(asked.values()) % 2 - 1)
                outcome = check(responder, reference, query.to_wire(), Transport.UDP)
                assert outcome is not None and outcome.rcode == dns.rcode.NOERROR, name
                reply = dns.message.from_wire(outcome.wire)
                if reply.flags & dns.flags.TC:  # too big for 512 bytes: dnspython's to say
                    assert spy.calls == before[0] + 1, name  # the fast answer was set aside
                    asked["truncated"] += 1
                    continue
                assert [len(rrset) for rrset in reply.answer] == [len(records)], name
                assert (spy.calls, len(fast.rcodes)) == (before[0], before[1] + 1), name
                asked["fast"] += 1
    assert asked["fast"] > 50, asked
    assert asked["truncated"] >= 1, asked
    spy.calls = 0
    for qname in ("fuzz.test.", "example.com."):
        query = dns.message.make_query(qname, "MX")
        check(responder, reference, query.to_wire(), Transport.UDP)
        query = dns.message.make_query(qname, "NS")
        check(responder, reference, query.to_wire(), Transport.UDP)
    assert spy.calls == 4


def test_a_hosted_root_zone(tmp_path: Path) -> None:
    """dnspython never points to the root name, a single byte: an answer owned by the root is
    written out, in the answer and in the authority section alike."""
    zone = tmp_path / "root.zone"
    zone.write_text(
        "$ORIGIN .\n$TTL 300\n@ SOA a.root. hostmaster.root. 1 7200 3600 1209600 300\n"
        '@ NS a.root.\n@ TXT "the root"\n@ A 192.0.2.1\na.root. A 192.0.2.53\n'
    )
    zones = load_zones([ZoneSettings(dns.name.root, zone)])
    responder, reference = Responder(zones), Responder(zones)
    for qname, qtype in ((".", "TXT"), (".", "A"), (".", "AAAA"), ("nothing.", "A")):
        for use_edns in (-1, 0):
            query = dns.message.make_query(qname, qtype, use_edns=use_edns)
            assert check(responder, reference, query.to_wire(), Transport.UDP) is not None


def test_random_names_under_a_wildcard_never_reach_dnspython(
    responder: Responder, reference: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The random subdomain attack on a zone with a wildcard (RFC 4592): A and TXT synthesized
    from ``*.wild``, NODATA for the types it lacks, all rendered without dnspython and none
    kept in the cache, which unique names would only churn. Names whose closest encloser is
    a delegation or whose wildcard is a CNAME keep dnspython."""
    spy = PlainSpy(responder, monkeypatch)
    fast = FastSpy(responder, monkeypatch)
    rng = random.Random(SEED)
    queries = []
    for index in range(60):
        label = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=10))
        qtype = ("A", "TXT", "AAAA", "MX")[index % 4]
        name = f"{label}.wild.fuzz.test." if index % 3 else f"x.{label}.wild.fuzz.test."
        query = dns.message.make_query(name, qtype, use_edns=index % 2 - 1)
        queries.append(query.to_wire())
        outcome = check(responder, reference, queries[-1], Transport.UDP)
        assert outcome is not None and outcome.rcode == dns.rcode.NOERROR, name
        answer = dns.message.from_wire(outcome.wire).answer
        assert [rrset.name for rrset in answer] == (
            [] if qtype in ("AAAA", "MX") else [query.question[0].name]
        )
    assert spy.calls == 0
    assert fast.rcodes == [dns.rcode.NOERROR] * 60
    for query in queries:  # seen again: kept now; the third time from the cache
        check(responder, reference, query, Transport.UDP)
        check(responder, reference, query, Transport.UDP)
        check(responder, reference, query.upper(), Transport.UDP)
    assert spy.calls == 0
    assert len(fast.rcodes) == 180, "kept for the same bytes only, not for the name's shape"
    for name in ("someone.wcname.fuzz.test.", "someone.deleg.fuzz.test."):
        check(responder, reference, dns.message.make_query(name, "A").to_wire(), Transport.UDP)
    assert spy.calls == 2
