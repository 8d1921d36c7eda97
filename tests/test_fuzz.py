"""Fuzzing the responder: 100,000 seeded random and mutated packets, then hypothesis for shrinking.

Whatever arrives, :meth:`Responder.answer` must not raise; it must stay silent to a packet
shorter than a header and to a response (QR=1); every other packet gets a reply (FORMERR at
least, as the README promises) that parses, carries the query's ID and QR=1, and fits the size
limit of its transport. These properties are checked here against the pure responder, and by
``bench/fuzz_daemon.py`` against a running daemon, which imports the generator and the checker
from this module so that both fuzz the same packets.

The size limits are written out from the RFCs here instead of imported from the responder, so
that a wrong constant there is caught rather than copied.
"""

from __future__ import annotations

import enum
import random
import struct
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nameserver.config import ZoneSettings
from nameserver.responder import Responder, Transport
from nameserver.zones import ZoneSet, load_zones

# Fixed, so that CI fuzzes the same packets on every run; failure messages name it.
SEED = 0x4E53_2026
PACKETS = 100_000

HEADER_SIZE = 12
QR_BIT = 0x80  # in the third header byte
CLASSIC_UDP_LIMIT = 512  # RFC 1035 §4.2.1; RFC 6891 §6.2.5 raises smaller EDNS sizes to it
UDP_CEILING = 1232  # the most the server sends over UDP, whatever the client offers
TCP_LIMIT = 65535  # RFC 1035 §4.2.2: a two-byte length prefix

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ZONE = ROOT / "zones" / "example.com.zone"
CONFORMANCE_ZONES = ROOT / "tests" / "conformance" / "zones"

_WIDE = "\n".join(f"wide A 198.51.100.{i}" for i in range(1, 61))  # ~1000 bytes: > 512, < 1232
_TALL = "\n".join(f'tall TXT "{i:02d}{"t" * 58}"' for i in range(40))  # ~2900 bytes: > 1232
_HUGE = "\n".join(f'huge TXT "{i:03d}{"h" * 240}"' for i in range(300))  # ~74 KB: > 65535
_GLUEY = "\n".join(  # a referral of 555 bytes, all NS and required glue: TC under 512
    f"gluey NS ns{i}.gluey\nns{i}.gluey A 203.0.113.{i}\n"
    + "\n".join(f"ns{i}.gluey AAAA 2001:db8::{i}:{j}" for j in range(5))
    for i in range(3)
)
_LONG_NAME = ".".join(("a" * 63, "b" * 63, "c" * 63, "d" * 40))  # 244 bytes with the origin

FUZZ_ZONE = f"""\
$ORIGIN fuzz.test.
$TTL 300
@          SOA   ns1 hostmaster 1 7200 3600 1209600 60
@          NS    ns1
@          NS    ns.elsewhere.example.
@          MX    10 mail
@          MX    20 mail.elsewhere.example.
@          TXT   "apex"
ns1        A     192.0.2.1
ns1        AAAA  2001:db8::1
mail       A     192.0.2.2
www        A     192.0.2.3
www        AAAA  2001:db8::3
WithCase   A     192.0.2.4
alias      CNAME www
chain1     CNAME chain2
chain2     CNAME chain3
chain3     CNAME www
loop1      CNAME loop2
loop2      CNAME loop1
dangling   CNAME nowhere
out        CNAME www.example.com.
away       CNAME host.elsewhere.example.
*.wild     A     192.0.2.5
*.wild     TXT   "synthesized"
*.wcname   CNAME www
a.b.c.ent  TXT   "below empty non-terminals"
_sip._udp  SRV   0 5 5060 sip
sip        A     192.0.2.6
sip        AAAA  2001:db8::6
\\000odd\\.label\\032x A 192.0.2.7
{_LONG_NAME} A 192.0.2.8
deleg      NS    ns.deleg
deleg      NS    ns.elsewhere.example.
deleg      DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.deleg   A     192.0.2.9
ns.deleg   AAAA  2001:db8::9
child      NS    ns1.child
ns1.child  A     192.0.2.10
{_WIDE}
{_TALL}
{_HUGE}
{_GLUEY}
"""

# Hosted as well as delegated from fuzz.test.: the closest enclosing zone must win.
CHILD_ZONE = """\
$ORIGIN child.fuzz.test.
$TTL 300
@    SOA  ns1 hostmaster 1 7200 3600 1209600 60
@    NS   ns1
ns1  A    192.0.2.10
www  A    192.0.2.11
"""


def write_fuzz_zones(directory: Path) -> list[ZoneSettings]:
    """Every zone the fuzzers serve: the repo's example zone, the two fuzz zones (written into
    ``directory``) and the conformance zones when that folder exists.

    The fuzz zones hold what the example lacks: wildcards, CNAME chains and loops, odd labels,
    a hosted child, and RRsets too big for 512 bytes, for 1232 bytes and for TCP.
    """
    fuzz = directory / "fuzz.test.zone"
    fuzz.write_text(FUZZ_ZONE)
    child = directory / "child.fuzz.test.zone"
    child.write_text(CHILD_ZONE)
    files = {"example.com.": EXAMPLE_ZONE, "fuzz.test.": fuzz, "child.fuzz.test.": child}
    files |= conformance_zones()
    return [ZoneSettings(dns.name.from_text(name), path) for name, path in files.items()]


def conformance_zones() -> dict[str, Path]:
    """Origin -> file of the conformance suite's zones (signed ones bring DNSSEC answers).

    Their files are named after their origins (``nsec.test.zone``); a zone with a
    ``.signed`` twin is served signed, as that suite serves it. None when the folder is absent.
    """
    if not CONFORMANCE_ZONES.is_dir():
        return {}
    zones = {}
    for path in sorted(CONFORMANCE_ZONES.glob("*.zone")):
        signed = path.with_name(path.name + ".signed")
        zones[path.name.removesuffix("zone")] = signed if signed.exists() else path
    return zones


def zone_names(zones: ZoneSet) -> list[dns.name.Name]:
    """Every owner name of every hosted zone: the names most worth asking about and mutating."""
    return sorted(name for hosted in zones for name in hosted.zone.names())


# --- The generator ------------------------------------------------------------------------

RANDOM_SHARE = 0.15  # pure random bytes
VALID_SHARE = 0.30  # well-formed queries sent as built; the rest are mutated

_T = dns.rdatatype.RdataType
COMMON_TYPES = (
    _T.A, _T.AAAA, _T.NS, _T.SOA, _T.MX, _T.TXT, _T.CNAME, _T.SRV, _T.DS, _T.DNSKEY, _T.RRSIG,
    _T.NSEC, _T.CAA, _T.HTTPS, _T.ANY,
)  # fmt: skip
ALL_TYPES = tuple(dns.rdatatype.RdataType)  # includes the meta types: OPT, TSIG, AXFR, ANY...
ODD_CLASSES = (dns.rdataclass.CH, dns.rdataclass.HS, dns.rdataclass.NONE, dns.rdataclass.ANY)
PAYLOADS = (0, 1, 511, 512, 513, 1231, 1232, 1233, 1400, 4096, 65535)
OUTSIDE_SUFFIXES = ("com.", "org.", "example.", "arpa.", "test.", "fuzz.", "")
ODD_BYTES = b"\x00.\\ \"'()@;$*-_\x7f\x80\xffAZaz09"
INTERESTING_BYTES = (0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF)
COUNT_VALUES = (0, 1, 2, 3, 0x7FFF, 0xFFFF)
TSIG_ALGORITHM = dns.name.from_text("hmac-sha256.")


def _pointer(target: int) -> bytes:
    """A compression pointer to ``target`` (RFC 1035 §4.1.4)."""
    return struct.pack("!H", 0xC000 | (target & 0x3FFF))


def _label_offsets(data: bytes | bytearray, start: int = HEADER_SIZE) -> list[int]:
    """Offsets of the length bytes of the name at ``start`` (the first question's), to its end.

    Mutations aim at these so that pointers and bad lengths land where a name is parsed.
    """
    offsets: list[int] = []
    position = start
    while position < len(data) and len(offsets) < 128:
        offsets.append(position)
        length = data[position]
        if length == 0 or length > 63:
            break
        position += length + 1
    return offsets


def _encode_name(labels: Sequence[bytes]) -> bytes:
    """Uncompressed wire form of ``labels``, no limit checked: a label over 63 bytes stays."""
    return b"".join(bytes([len(label) & 0xFF]) + label for label in labels) + b"\x00"


def _label_lengths(size: int) -> list[int]:
    """Label lengths (63 while they fit) of a name of exactly ``size`` wire bytes, 3 to 255."""
    lengths: list[int] = []
    left = size - 1  # the root label's length byte
    while left > 0:
        length = min(63, left - 1)
        if left - (length + 1) == 1:  # one byte left over could not hold a label
            length -= 1
        lengths.append(length)
        left -= length + 1
    return lengths


def _fitting_name(labels: Sequence[bytes]) -> dns.name.Name:
    """An absolute name from ``labels``, leading labels dropped until it is at most 255 bytes."""
    labels = [label[:63] for label in labels]
    while sum(len(label) + 1 for label in labels) + 1 > 255:
        labels.pop(0)
    return dns.name.Name([*labels, b""])


class PacketGenerator:
    """Seeded random packets: one seed always gives the same sequence.

    A packet is pure random bytes, a well-formed query of a random shape, or such a query
    mutated one to four times. Only ``self.rng`` is drawn from; nothing reads the clock.
    """

    def __init__(self, seed: int, names: Sequence[dns.name.Name]) -> None:
        self.rng = random.Random(seed)
        self.names = list(names)
        self.records = _section_records()
        self.latest: bytes | None = None
        self.mutations: tuple[Callable[[bytearray], None], ...] = (
            self._flip_bits,
            self._replace_bytes,
            self._truncate,
            self._extend,
            self._set_count,
            self._plant_pointer,
            self._overlong_label,
            self._overlong_name,
            self._compressed_overlong_name,
        )

    def packet(self) -> bytes:
        """The next packet. Mutants derive from the latest well-formed query, which is thus
        sent once as built and then about twice changed (building one costs ten mutations)."""
        roll = self.rng.random()
        if roll < RANDOM_SHARE:
            return self.rng.randbytes(self.rng.randrange(601))
        if roll < RANDOM_SHARE + VALID_SHARE or self.latest is None:
            self.latest = self.query()
            return self.latest
        return self.mutate(self.latest)

    # Well-formed queries, built with dnspython.

    def query(self) -> bytes:
        rng = self.rng
        message = dns.message.Message(id=rng.getrandbits(16))
        message.flags = self._header_flags()
        message.question = [
            dns.rrset.RRset(self._qname(), self._qclass(), self._qtype())
            for _ in range(rng.choice((1, 1, 1, 1, 1, 1, 1, 1, 0, 2, 3)))
        ]
        if rng.random() < 0.6:
            self._add_edns(message)
        if rng.random() < 0.1:
            for _ in range(rng.randint(1, 3)):
                section = rng.choice((message.answer, message.authority, message.additional))
                section.append(rng.choice(self.records))
        wire = message.to_wire(max_size=65535)  # not the payload it advertises
        return self._with_tsig(wire) if rng.random() < 0.03 else wire

    def _header_flags(self) -> int:
        """Flags and opcode: mostly a plain QUERY, sometimes QR, other opcodes, odd bits."""
        rng = self.rng
        flags = 0 if rng.random() < 0.92 else rng.randrange(1, 16) << 11  # the opcode
        for flag, chance in (
            (dns.flags.QR, 0.05),
            (dns.flags.RD, 0.5),
            (dns.flags.CD, 0.2),
            (dns.flags.AD, 0.2),
            (dns.flags.AA, 0.05),
            (dns.flags.TC, 0.05),
            (0x0040, 0.05),  # the Z bit
        ):
            if rng.random() < chance:
                flags |= flag
        if rng.random() < 0.05:
            flags |= rng.randrange(16)  # an rcode in a query
        return flags

    def _qname(self) -> dns.name.Name:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            name = rng.choice(self.names)
        elif roll < 0.65:
            prefix = [self._label() for _ in range(rng.randint(1, 3))]
            name = _fitting_name([*prefix, *rng.choice(self.names).labels[:-1]])
        elif roll < 0.8:
            labels = [self._label() for _ in range(rng.randint(0, 3))]
            suffix = rng.choice(OUTSIDE_SUFFIXES).encode().split(b".")[:-1]
            name = _fitting_name([*labels, *suffix])
        elif roll < 0.85:
            name = _fitting_name([self._odd_label() for _ in range(rng.randint(1, 5))])
        elif roll < 0.95:
            name = self._long_name()
        else:
            name = dns.name.root
        return self._recased(name) if rng.random() < 0.3 else name

    def _long_name(self) -> dns.name.Name:
        """A name of 200 to 255 bytes: two or three of these do not fit in 512 bytes."""
        lengths = _label_lengths(self.rng.randint(200, 255))
        chars = b"abcdefghijklmnopqrstuvwxyz0123456789-"
        return dns.name.Name([bytes(self.rng.choices(chars, k=n)) for n in lengths] + [b""])

    def _label(self) -> bytes:
        rng = self.rng
        length = rng.choice((1, 2, 3, 5, 8, 63)) if rng.random() < 0.8 else rng.randint(1, 63)
        return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789-_*") for _ in range(length))

    def _odd_label(self) -> bytes:
        """A label of bytes that zone files must escape, or plain random bytes."""
        rng = self.rng
        length = rng.randint(1, 63)
        if rng.random() < 0.5:
            return bytes(rng.choice(ODD_BYTES) for _ in range(length))
        return rng.randbytes(length)

    def _recased(self, name: dns.name.Name) -> dns.name.Name:
        """``name`` with random letters in the other case (names compare case-insensitively)."""
        flip = self.rng.random
        return dns.name.Name(
            bytes(b ^ 0x20 if chr(b).isalpha() and flip() < 0.5 else b for b in label)
            for label in name.labels
        )

    def _qtype(self) -> int:
        roll = self.rng.random()
        if roll < 0.7:
            return self.rng.choice(COMMON_TYPES)
        if roll < 0.9:
            return self.rng.choice(ALL_TYPES)
        return self.rng.getrandbits(16)

    def _qclass(self) -> int:
        roll = self.rng.random()
        if roll < 0.85:
            return dns.rdataclass.IN
        if roll < 0.95:
            return self.rng.choice(ODD_CLASSES)
        return self.rng.getrandbits(16)

    def _add_edns(self, message: dns.message.Message) -> None:
        """An OPT record: mostly version 0, any payload, DO or odd flags, 0-3 options."""
        rng = self.rng
        version = 0 if rng.random() < 0.92 else rng.randrange(1, 256)
        flags = dns.flags.DO if rng.random() < 0.5 else 0
        if rng.random() < 0.1:
            flags |= rng.getrandbits(16)
        if rng.random() < 0.05:
            flags |= rng.getrandbits(8) << 24  # extended rcode bits in a query
        payload = rng.choice(PAYLOADS) if rng.random() < 0.7 else rng.getrandbits(16)
        options = [self._edns_option() for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))]
        message.use_edns(version, flags, payload, options=options)

    def _edns_option(self) -> dns.edns.Option:
        rng = self.rng
        kind = rng.randrange(7)
        if kind == 0:
            server = rng.randbytes(rng.randint(8, 32)) if rng.random() < 0.5 else b""
            return dns.edns.CookieOption(rng.randbytes(8), server)
        if kind == 1:
            return self._ecs_option()
        if kind == 2:
            return dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
        if kind == 3:
            return dns.edns.GenericOption(dns.edns.OptionType.PADDING, bytes(rng.randint(0, 64)))
        if kind == 4:
            return dns.edns.EDEOption(rng.getrandbits(16), rng.choice((None, "fuzz", "é")))
        # A known code with a body of the wrong shape, or a code nobody knows.
        code = rng.choice(
            (*dns.edns.OptionType, rng.getrandbits(16)) if kind == 5 else (rng.getrandbits(16),)
        )
        return dns.edns.GenericOption(code, rng.randbytes(rng.randint(0, 40)))

    def _ecs_option(self) -> dns.edns.ECSOption:
        """Client subnet with a random address, source and scope prefix (RFC 7871)."""
        rng = self.rng
        if rng.random() < 0.5:
            address, bits = ".".join(str(rng.getrandbits(8)) for _ in range(4)), 32
        else:
            address, bits = ":".join(f"{rng.getrandbits(16):x}" for _ in range(8)), 128
        return dns.edns.ECSOption(address, rng.randint(0, bits), rng.randint(0, bits))

    def _with_tsig(self, wire: bytes) -> bytes:
        """``wire`` with a TSIG record appended: a key nobody has and a MAC of random bytes.

        Built by hand because dnspython signs with the current time, which would make the
        packet differ from run to run.
        """
        rng = self.rng
        key = rng.choice((dns.name.from_text("key."), dns.name.from_text("tsig.fuzz.test.")))
        mac = rng.randbytes(32)
        rdata = (
            TSIG_ALGORITHM.to_wire()
            + rng.getrandbits(48).to_bytes(6, "big")
            + struct.pack("!HH", 300, len(mac))
            + mac
            + struct.pack("!HHH", int.from_bytes(wire[:2], "big"), 0, 0)
        )
        record = key.to_wire() + struct.pack(
            "!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata)
        )
        data = bytearray(wire + record + rdata)
        struct.pack_into("!H", data, 10, struct.unpack_from("!H", data, 10)[0] + 1)
        return bytes(data)

    # Mutations: each changes ``data`` in place.

    def mutate(self, wire: bytes) -> bytes:
        data = bytearray(wire)
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3, 4))):
            self.rng.choice(self.mutations)(data)
        return bytes(data)

    def _flip_bits(self, data: bytearray) -> None:
        for _ in range(self.rng.randint(1, 8) if data else 0):
            bit = self.rng.randrange(len(data) * 8)
            data[bit >> 3] ^= 1 << (bit & 7)

    def _replace_bytes(self, data: bytearray) -> None:
        for _ in range(self.rng.randint(1, 4) if data else 0):
            value = self.rng.choice(INTERESTING_BYTES) if self.rng.random() < 0.5 else None
            data[self.rng.randrange(len(data))] = (
                self.rng.getrandbits(8) if value is None else value
            )

    def _truncate(self, data: bytearray) -> None:
        del data[self.rng.randrange(len(data) + 1) :]

    def _extend(self, data: bytearray) -> None:
        if self.rng.random() < 0.5:
            junk = self.rng.choice((b"\xc0\x0c", b"\x00", b"\xff", b"\x3f", b"\x01a"))
            data += junk * self.rng.randint(1, 64)
        else:
            data += self.rng.randbytes(self.rng.randint(1, 200))

    def _set_count(self, data: bytearray) -> None:
        """QDCOUNT, ANCOUNT, NSCOUNT or ARCOUNT set to a value that lies about what follows."""
        if len(data) >= HEADER_SIZE:
            value = self.rng.choice((*COUNT_VALUES, self.rng.getrandbits(16)))
            struct.pack_into("!H", data, 4 + 2 * self.rng.randrange(4), value)

    def _plant_pointer(self, data: bytearray) -> None:
        """A compression pointer where a name is read: to itself, backwards, forwards (maybe past
        the end), or two pointers to each other."""
        rng = self.rng
        offsets = _label_offsets(data)
        if not offsets:
            return
        at = rng.choice(offsets)
        if at + 2 > len(data):
            data.append(0)  # room for both bytes of the pointer
        kind = rng.randrange(4)
        if kind == 0:
            target = at
        elif kind == 1:
            target = rng.randrange(at)
        elif kind == 2:
            target = rng.randrange(at + 2, len(data) + 64)
        else:
            target = len(data)
            data += _pointer(at)
        data[at : at + 2] = _pointer(target)

    def _overlong_label(self, data: bytearray) -> None:
        """A label length of 64 to 191: more than a label may hold, or a reserved label type."""
        offsets = _label_offsets(data)
        if offsets:
            data[self.rng.choice(offsets)] = self.rng.randint(64, 191)

    def _overlong_name(self, data: bytearray) -> None:
        """The first question's name replaced by 257 to 318 bytes of valid labels."""
        offsets = _label_offsets(data)
        if offsets:
            labels = [bytes([0x61 + i]) * 63 for i in range(4)] + [b"e" * self.rng.randint(0, 60)]
            data[offsets[0] : offsets[-1] + 1] = _encode_name([label for label in labels if label])

    def _compressed_overlong_name(self, data: bytearray) -> None:
        """A record appended whose owner is 128 bytes of labels and then a pointer to the first
        question's name: every piece is legal, but the whole name can pass 255 bytes."""
        if len(data) < HEADER_SIZE:
            return
        owner = _encode_name([b"p" * 63, b"q" * 63])[:-1] + _pointer(HEADER_SIZE)
        data += owner + struct.pack("!HHIH", dns.rdatatype.A, dns.rdataclass.IN, 0, 4) + bytes(4)
        struct.pack_into("!H", data, 10, (struct.unpack_from("!H", data, 10)[0] + 1) & 0xFFFF)


def _section_records() -> list[dns.rrset.RRset]:
    """Records a query may carry in its answer, authority or additional section."""
    texts = (
        "www.fuzz.test. 300 IN A 192.0.2.3",
        "www.fuzz.test. 300 IN AAAA 2001:db8::3",
        "alias.fuzz.test. 300 IN CNAME www.fuzz.test.",
        "fuzz.test. 300 IN MX 10 mail.fuzz.test.",
        "fuzz.test. 300 IN NS ns1.fuzz.test.",
        "fuzz.test. 300 IN SOA ns1.fuzz.test. hostmaster.fuzz.test. 2 7200 3600 1209600 60",
        'example.com. 0 ANY TXT "update-ish"',
        "deleg.fuzz.test. 300 IN DS 1 13 2 " + "ab" * 32,
    )
    return [dns.rrset.from_text(*text.split(maxsplit=4)) for text in texts]


# --- The checker --------------------------------------------------------------------------


class Broken(enum.Enum):
    """The properties a reply (or its absence) can break."""

    RAISED = "answer() raised"
    SHORT_ANSWERED = "a packet shorter than a header got a reply"
    QR_ANSWERED = "a packet with QR=1 got a reply"
    UNANSWERED = "a query (QR=0, a full header) got no reply"
    UNPARSEABLE = "the reply does not parse"
    WRONG_ID = "the reply's ID is not the query's"
    NOT_A_RESPONSE = "the reply has QR=0"
    TOO_BIG = "the reply is over the size limit of its transport"


@dataclass(frozen=True)
class Verdict:
    """What one reply says: the property it breaks, if any, and tags for coverage counts."""

    broken: Broken | None = None
    detail: str = ""
    tags: tuple[str, ...] = ()


def silence_owed(wire: bytes) -> Broken | None:
    """The property a reply to ``wire`` would break, or None when ``wire`` is owed a reply."""
    if len(wire) < HEADER_SIZE:
        return Broken.SHORT_ANSWERED
    if wire[2] & QR_BIT:
        return Broken.QR_ANSWERED
    return None


def udp_limit(wire: bytes) -> int:
    """The most a UDP reply to ``wire`` may hold: 512 bytes without EDNS in the query, else the
    client's payload raised to 512 and capped at 1232. A query that does not parse has no EDNS.
    """
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return CLASSIC_UDP_LIMIT
    if query.edns < 0:
        return CLASSIC_UDP_LIMIT
    return min(max(query.payload, CLASSIC_UDP_LIMIT), UDP_CEILING)


def check_reply(wire: bytes, transport: Transport, reply: bytes | None) -> Verdict:
    """Judge the ``reply`` (None: nothing sent) to ``wire`` against every property."""
    owed_silence = silence_owed(wire)
    if reply is None:
        return Verdict(tags=("silent",)) if owed_silence else Verdict(Broken.UNANSWERED)
    if owed_silence:
        return Verdict(owed_silence, f"reply {reply.hex()}")
    try:
        response = dns.message.from_wire(reply)
    except Exception as error:
        return Verdict(Broken.UNPARSEABLE, f"{type(error).__name__}: {error}; {reply.hex()}")
    if reply[:2] != wire[:2]:
        return Verdict(Broken.WRONG_ID, f"query ID {wire[:2].hex()}, reply ID {reply[:2].hex()}")
    if not reply[2] & QR_BIT:
        return Verdict(Broken.NOT_A_RESPONSE, f"reply {reply.hex()}")
    # Every limit is at least 512 bytes: only a longer reply needs the query parsed.
    if len(reply) > CLASSIC_UDP_LIMIT:
        limit = TCP_LIMIT if transport is Transport.TCP else udp_limit(wire)
        if len(reply) > limit:
            return Verdict(Broken.TOO_BIG, f"{len(reply)} bytes over {transport.value}, {limit=}")
    return Verdict(tags=_tags(response, len(reply)))


def _tags(response: dns.message.Message, size: int) -> tuple[str, ...]:
    """The rcode, and TC, AA and "large" (over 512 bytes) when they apply."""
    tags = [dns.rcode.to_text(response.rcode())]
    tags += [
        name for flag, name in ((dns.flags.TC, "TC"), (dns.flags.AA, "AA")) if response.flags & flag
    ]
    if size > CLASSIC_UDP_LIMIT:
        tags.append("large")
    return tuple(tags)


def answer_checked(responder: Responder, wire: bytes, transport: Transport) -> Verdict:
    """Ask ``responder`` and judge its answer; an exception is a verdict too, with traceback."""
    try:
        reply = responder.answer(wire, transport)
    except Exception:
        return Verdict(Broken.RAISED, traceback.format_exc())
    return check_reply(wire, transport, reply)


# --- The tests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One broken property, with what it takes to reproduce it."""

    packet: str  # which one: "packet #N" of the seeded run, or hypothesis's example
    transport: Transport
    wire: bytes
    verdict: Verdict

    def describe(self) -> str:
        assert self.verdict.broken is not None
        return (
            f"{self.packet} over {self.transport.name}: {self.verdict.broken.value}\n"
            f"  packet hex: {self.wire.hex()}\n"
            f"  reproduce: responder.answer(bytes.fromhex('{self.wire.hex()}'), "
            f"Transport.{self.transport.name})\n"
            f"  {self.verdict.detail.strip()}"
        )


SHOWN_FINDINGS = 8
# What the mix must reach for the run to mean something: a generator that drifts into
# producing only garbage (or only valid queries) fails here instead of passing quietly.
REQUIRED_TAGS = (
    "silent", "NOERROR", "AA", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "NOTAUTH", "BADVERS",
    "TC", "large",
)  # fmt: skip


def fuzz_report(seed: int, packets: int, findings: list[Finding], broken: Counter[Broken]) -> str:
    """The failure message: the seed, counts per property, and the first findings in full."""
    lines = [f"fuzz seed {seed:#x}, {packets} packets: {sum(broken.values())} broken replies"]
    lines += [f"  {count:6d} x {kind.value}" for kind, count in broken.most_common()]
    lines += [finding.describe() for finding in findings[:SHOWN_FINDINGS]]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def responder(tmp_path_factory: pytest.TempPathFactory) -> Responder:
    return Responder(load_zones(write_fuzz_zones(tmp_path_factory.mktemp("fuzz-zones"))))


def test_fuzzed_packets(responder: Responder) -> None:
    """100,000 seeded packets, alternately over UDP and TCP, break no property.

    One transport per packet halves the time of both; the two differ only in the size limit,
    and every shape of packet reaches both.
    """
    generator = PacketGenerator(SEED, zone_names(responder.zones))
    findings: list[Finding] = []
    broken: Counter[Broken] = Counter()
    tags: Counter[str] = Counter()
    for index in range(PACKETS):
        wire = generator.packet()
        transport = (Transport.UDP, Transport.TCP)[index % 2]
        verdict = answer_checked(responder, wire, transport)
        tags.update(verdict.tags)
        if verdict.broken is not None:
            broken[verdict.broken] += 1
            findings.append(Finding(f"packet #{index}", transport, wire, verdict))
    if findings:
        pytest.fail(fuzz_report(SEED, PACKETS, findings, broken), pytrace=False)
    missing = [tag for tag in REQUIRED_TAGS if not tags[tag]]
    assert not missing, f"fuzz seed {SEED:#x} never produced {missing}; got {dict(tags)}"


def test_generator_is_reproducible() -> None:
    """One seed, one packet sequence: a failure's seed is enough to find its packet again."""
    names = [dns.name.from_text("www.fuzz.test."), dns.name.from_text("fuzz.test.")]
    first, second = PacketGenerator(SEED, names), PacketGenerator(SEED, names)
    assert [first.packet() for _ in range(500)] == [second.packet() for _ in range(500)]


# Hypothesis builds the packets from parts, so that a failure shrinks to a small message.

HYPOTHESIS_NAMES = tuple(
    dns.name.from_text(text).to_wire()
    for text in (
        "fuzz.test.", "www.fuzz.test.", "WWW.Fuzz.Test.", "wide.fuzz.test.", "tall.fuzz.test.",
        "gluey.fuzz.test.", "x.wild.fuzz.test.", "loop1.fuzz.test.", "a.b.deleg.fuzz.test.",
        "www.child.fuzz.test.", "nope.fuzz.test.", "example.com.", "www.example.org.", ".",
    )
)  # fmt: skip

# Names of a given size, up to the 255-byte limit and often near it: two or three of those
# pass 512 bytes. Fill letters differ so that names do not compress into one another.
sized_names = st.builds(
    lambda size, fill: _encode_name([bytes([fill]) * n for n in _label_lengths(size)]),
    st.one_of(st.integers(3, 255), st.integers(240, 255)),
    st.sampled_from(b"xyz"),
)
wire_names = st.one_of(
    st.sampled_from(HYPOTHESIS_NAMES),
    st.lists(st.binary(min_size=1, max_size=70), max_size=6).map(_encode_name),
    sized_names,
)
questions = st.builds(
    lambda name, rdtype, rdclass: name + struct.pack("!HH", rdtype, rdclass),
    wire_names,
    st.one_of(st.sampled_from(COMMON_TYPES), st.integers(0, 0xFFFF)),
    st.one_of(st.just(int(dns.rdataclass.IN)), st.integers(0, 0xFFFF)),
)
edns_options = st.lists(
    st.builds(
        lambda code, body: struct.pack("!HH", code, len(body)) + body,
        st.one_of(st.sampled_from(list(dns.edns.OptionType)), st.integers(0, 0xFFFF)),
        st.binary(max_size=40),
    ),
    max_size=3,
)
opt_records = st.builds(
    lambda payload, ttl, options: (
        b"\x00"
        + struct.pack("!HHIH", dns.rdatatype.OPT, payload, ttl, len(b"".join(options)))
        + b"".join(options)
    ),
    st.one_of(st.sampled_from(PAYLOADS), st.integers(0, 0xFFFF)),
    st.one_of(st.just(0), st.just(int(dns.flags.DO)), st.integers(0, 0xFFFFFFFF)),
    edns_options,
)


@st.composite
def structured_messages(draw: st.DrawFn) -> bytes:
    """A header, 0-3 questions, maybe an OPT record and trailing junk; true counts or not."""
    asked = draw(st.lists(questions, max_size=3))
    opt = draw(st.one_of(st.none(), opt_records))
    counts = [len(asked), 0, 0, int(opt is not None)]
    if draw(st.booleans()):
        counts = draw(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4))
    header = struct.pack(
        "!HH4H", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)), *counts
    )
    junk = draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=16)))
    return header + b"".join(asked) + (opt or b"") + junk


@settings(
    derandomize=True,
    database=None,
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(wire=st.one_of(structured_messages(), st.binary(max_size=40)))
def test_structured_messages(responder: Responder, wire: bytes) -> None:
    """Every property, on messages hypothesis can shrink when one breaks."""
    for transport in Transport:
        verdict = answer_checked(responder, wire, transport)
        assert verdict.broken is None, Finding("example", transport, wire, verdict).describe()
