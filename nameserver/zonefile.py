"""A fast reader for zone files as they are commonly written, straight into a compiled zone.

dnspython's reader builds a tokenizer token, a ``Name`` and an ``Rdata`` object for every field
and record: about 90 s for a million records. This reader splits lines with ``str.split``,
encodes the frequent simple types (A, AAAA, NS, CNAME, PTR, MX) by hand and hands every other
record's text to ``dns.rdata.from_text``, which is dnspython's own parser for that type.

dnspython's reader stays the reference. This one implements its rules (``$ORIGIN``, ``$TTL``,
``$INCLUDE``, an owner carried over from the previous record, TTL and class in either order,
the TTL a record without one inherits, parentheses, comments, quoted strings) and raises
:class:`Unsupported` on anything else: another directive, a class other than IN, text dnspython
would read differently (carriage returns, whitespace other than space and tab), any error, and
data a served zone must not have. The caller then reads the file with dnspython, which names the
problem by file and line. Text is encoded by hand only in the simple spellings where the result
cannot differ from dnspython's; the rest is dnspython's.
"""

from __future__ import annotations

import pathlib
import re
import socket
import struct
from collections.abc import Callable

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from nameserver.zonecache import Source, fingerprint
from nameserver.zonestore import Builder, Conflict, ZoneData

IN = dns.rdataclass.IN
_SOA = dns.rdatatype.SOA
# A line holding one of these needs the full tokenizer, not str.split.
_SPECIAL = re.compile(r'["()\\]')
# A quoted string, a parenthesis, a comment, a plain token; anything else (an unterminated
# quote, a lone backslash) is caught by the last group.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[()]|;.*|(?:[^\s"();\\]|\\.)+|(\S)')
# dnspython's tokenizer separates tokens by space, tab and newline only; str.split does not.
_OTHER_WHITESPACE = re.compile(r"[^\S \t\n]")
_MAX_TTL = 2**32 - 1
_PREFERENCE = struct.Struct("!H")
_LENGTHS = [bytes((length,)) for length in range(64)]

#: Types encoded by hand when their text is simple; the rest goes to ``dns.rdata.from_text``.
_TYPES = {
    name: dns.rdatatype.from_text(name)
    for name in [
        "A",
        "AAAA",
        "NS",
        "CNAME",
        "PTR",
        "MX",
        "TXT",
        "SOA",
        "SRV",
        "CAA",
        "DS",
        "RRSIG",
        "NSEC",
        "NSEC3",
        "NSEC3PARAM",
        "DNSKEY",
        "DNAME",
    ]
}


class Unsupported(Exception):
    """What this reader does not vouch for; dnspython's reader must read the file instead."""


def read(path: pathlib.Path, data: bytes, origin: dns.name.Name) -> tuple[ZoneData, list[Source]]:
    """Compile the zone file ``path`` holding ``data``; its data and every file it was read
    from (``path`` first, then each ``$INCLUDE`` in order) with the digest of its bytes.

    :raises Unsupported: see the module's description.
    """
    reader = _Reader(origin)
    reader.read_file(path, data)
    try:
        return reader.builder.finish(), reader.sources
    except Conflict as conflict:
        raise Unsupported(str(conflict)) from None


class _Reader:
    """The state dnspython's reader keeps, under the same names where there is one."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.zone_origin = origin
        self.zone_key = origin.to_wire().lower()
        self.builder = Builder(origin)
        self.sources: list[Source] = []
        self._set_origin(origin)
        self.last_name: bytes | None = None
        self.last_ttl = 0
        self.last_ttl_known = False
        self.default_ttl = 0
        self.default_ttl_known = False
        self.default_ttl_from_soa = False
        self._rdata_names: dict[tuple[str, bytes], bytes | None] = {}

    def _set_origin(self, origin: dns.name.Name) -> None:
        self.current_origin = origin
        self.origin_wire = origin.to_wire()
        self.origin_inside = origin.is_subdomain(self.zone_origin)

    def read_file(self, path: pathlib.Path, data: bytes) -> None:
        self.sources.append((str(path), fingerprint(data)))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Unsupported("not UTF-8") from None
        if _OTHER_WHITESPACE.search(text):
            raise Unsupported("whitespace other than space, tab and newline")
        lines = text.split("\n")
        count = len(lines)
        number = 0
        while number < count:
            line = lines[number]
            number += 1
            if not line or line[0] == ";":
                continue
            if _SPECIAL.search(line) is None:
                comment = line.find(";")
                tokens = (line if comment < 0 else line[:comment]).split()
            elif "(" in (tokens := _split(line)) or ")" in tokens:
                tokens, depth = _unparenthesize(tokens, 0)
                while depth:
                    if number == count:
                        raise Unsupported("unbalanced parentheses")
                    more, depth = _unparenthesize(_split(lines[number]), depth)
                    number += 1
                    tokens += more
            if not tokens:
                continue
            if line[0] == "$":
                self._directive(path, tokens)
            elif line[0] in " \t":
                self._record(None, tokens)
            elif line[0] == "(":
                raise Unsupported("a statement opening with a parenthesis")
            else:
                self._record(tokens[0], tokens[1:])

    def _directive(self, path: pathlib.Path, tokens: list[str]) -> None:
        directive = tokens[0].upper()
        if directive == "$TTL" and len(tokens) == 2:
            self.default_ttl = _ttl(tokens[1])
            self.default_ttl_known = True
            self.default_ttl_from_soa = False
        elif directive == "$ORIGIN" and len(tokens) == 2 and tokens[1][0] != '"':
            self._set_origin(_from_text(tokens[1], self.current_origin))
        elif directive == "$INCLUDE" and len(tokens) in (2, 3):
            self._include(path.parent / _unquote(tokens[1]), tokens[2:])
        else:
            raise Unsupported(f"directive {tokens[0]}")

    def _include(self, path: pathlib.Path, origin: list[str]) -> None:
        """dnspython reads an included file with the includer's state and restores it after."""
        if origin and origin[0][0] == '"':
            raise Unsupported("a quoted $INCLUDE origin")
        saved = (
            self.current_origin,
            self.last_name,
            self.last_ttl,
            self.last_ttl_known,
            self.default_ttl,
            self.default_ttl_known,
            self.default_ttl_from_soa,
        )
        if origin:
            self._set_origin(_from_text(origin[0], self.current_origin))
        try:
            data = path.read_bytes()
        except OSError:
            raise Unsupported(f"cannot read {path}") from None
        self.read_file(path, data)
        (
            current_origin,
            self.last_name,
            self.last_ttl,
            self.last_ttl_known,
            self.default_ttl,
            self.default_ttl_known,
            self.default_ttl_from_soa,
        ) = saved
        self._set_origin(current_origin)

    def _record(self, owner_text: str | None, rest: list[str]) -> None:
        """One resource record: the steps of dnspython's ``Reader._rr_line``."""
        if owner_text is not None:
            self.last_name = self._owner(owner_text)
        owner = self.last_name
        if owner is None or len(rest) < 2:
            raise Unsupported("a record without an owner or a type")
        # Most records name their type first; the TTL and class, when given, come before it.
        index, ttl = 0, None
        rdtype = _TYPES.get(rest[0].upper())
        if rdtype is None:
            index, ttl = self._ttl_and_class(rest)
            word = rest[index].upper()
            rdtype = _TYPES.get(word) or _rdatatype(word)
        if ttl is None:
            ttl = self._implicit_ttl()
        fields = rest[index + 1 :]
        encode = _ENCODERS.get(rdtype)
        encoded = None if encode is None else encode(self, fields)
        covers = 0
        if encoded is None:
            rdata = self._from_text(rdtype, fields)
            encoded = rdata.to_wire(), rdata.to_digestable()
            covers = rdata.covers()
            if rdtype == _SOA and not self.default_ttl_known:
                # Before RFC 2308, the SOA's MINIMUM was the zone's default TTL; dnspython
                # still takes it when no $TTL came first.
                self.default_ttl = rdata.minimum  # type: ignore[attr-defined]
                self.default_ttl_known = True
                self.default_ttl_from_soa = True
                if ttl is None:
                    ttl = self._implicit_ttl()
        if ttl is None:
            raise Unsupported("no TTL")
        try:
            self.builder.add(owner, rdtype, covers, ttl, *encoded)
        except Conflict as conflict:
            raise Unsupported(str(conflict)) from None

    def _ttl_and_class(self, rest: list[str]) -> tuple[int, int | None]:
        """Where the type is in ``rest`` and the TTL, if one is given, in either order with
        the class."""
        index = 0
        ttl = None
        if rest[0][0].isdigit():
            ttl = self._explicit_ttl(rest[0])
            index = 1
        word = rest[index].upper()
        if word == "IN":
            index += 1
        elif word not in _TYPES and _is_class(word):
            raise Unsupported("a class other than IN")
        if ttl is None and index < len(rest) and rest[index][0].isdigit():
            ttl = self._explicit_ttl(rest[index])
            index += 1
        if index >= len(rest):
            raise Unsupported("a record without a type")
        return index, ttl

    def _owner(self, text: str) -> bytes:
        if text[0] == '"':
            raise Unsupported("a quoted owner name")
        wire = _encode_name(text, self.origin_wire)
        if wire is None:
            wire = _from_text(text, self.current_origin).to_wire()
        relative = text != "@" and not text.endswith(".")
        if not (relative and self.origin_inside) and not _inside(wire.lower(), self.zone_key):
            raise Unsupported("an owner outside the zone")
        return wire

    def _rdata_name(self, text: str) -> bytes | None:
        """A name in rdata, when it needs no more than splitting at dots; else ``None``."""
        key = (text, self.origin_wire)
        try:
            return self._rdata_names[key]
        except KeyError:
            wire = self._rdata_names[key] = _encode_name(text, self.origin_wire)
            return wire

    def _from_text(self, rdtype: int, fields: list[str]) -> dns.rdata.Rdata:
        try:
            return dns.rdata.from_text(
                IN, rdtype, " ".join(fields), self.current_origin, False, self.zone_origin
            )
        except Exception as error:  # dnspython's reader, too, takes any failure here as an error
            raise Unsupported(str(error)) from None

    def _explicit_ttl(self, text: str) -> int:
        ttl = _ttl(text)
        self.last_ttl = ttl
        self.last_ttl_known = True
        return ttl

    def _implicit_ttl(self) -> int | None:
        """``Reader._implicit_ttl`` with ``rfc2308_ttl``: the last TTL stated beats a default
        taken from the SOA, a $TTL beats both."""
        if self.last_ttl_known and (not self.default_ttl_known or self.default_ttl_from_soa):
            return self.last_ttl
        if self.default_ttl_known:
            return self.default_ttl
        return None


def _split(line: str) -> list[str]:
    tokens = []
    for match in _TOKEN.finditer(line):
        if match.group(1) is not None:
            raise Unsupported("a token dnspython may read otherwise")
        token = match.group(0)
        if token[0] != ";":
            tokens.append(token)
    return tokens


def _unparenthesize(tokens: list[str], depth: int) -> tuple[list[str], int]:
    kept = []
    for token in tokens:
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:
                raise Unsupported("unbalanced parentheses")
        else:
            kept.append(token)
    return kept, depth


def _unquote(token: str) -> str:
    if token[0] != '"':
        return token
    if "\\" in token:
        raise Unsupported("an escape in a quoted file name")
    return token[1:-1]


def _ttl(text: str) -> int:
    if text.isascii() and text.isdigit():
        ttl = int(text)
        if ttl > _MAX_TTL:
            raise Unsupported("TTL out of range")
        return ttl
    try:
        return dns.ttl.from_text(text)
    except dns.ttl.BadTTL:
        raise Unsupported(f"bad TTL {text}") from None


def _is_class(word: str) -> bool:
    try:
        dns.rdataclass.from_text(word)
    except Exception:  # dnspython's reader: whatever is not a class may be a type
        return False
    return True


def _rdatatype(word: str) -> int:
    try:
        return dns.rdatatype.from_text(word)
    except Exception:
        raise Unsupported(f"unknown type {word}") from None


def _from_text(text: str, origin: dns.name.Name) -> dns.name.Name:
    try:
        return dns.name.from_text(text, origin)
    except Exception:
        raise Unsupported(f"bad name {text}") from None


def _encode_name(text: str, origin_wire: bytes) -> bytes | None:
    """``text`` in wire form, letter case kept, when it has no escapes and is ASCII (dnspython
    applies IDNA otherwise); ``None`` when it needs dnspython."""
    if text == "@":
        return origin_wire
    if "\\" in text or not text.isascii() or text[0] == '"':
        return None
    if "." not in text and len(text) < 64:  # one relative label: most owner names
        wire = _LENGTHS[len(text)] + text.encode() + origin_wire
        return wire if len(wire) <= 255 else None
    if text == ".":
        return b"\0"
    absolute = text[-1] == "."
    parts = []
    for label in (text[:-1] if absolute else text).encode().split(b"."):
        if not 0 < len(label) < 64:
            return None
        parts += (_LENGTHS[len(label)], label)
    wire = b"".join(parts) + (b"\0" if absolute else origin_wire)
    return wire if len(wire) <= 255 else None


def _inside(key: bytes, zone_key: bytes) -> bool:
    """Whether the lower-case wire name ``key`` is at or below ``zone_key``, label by label."""
    offset = 0
    while offset < len(key):
        if key[offset:] == zone_key:
            return True
        offset += key[offset] + 1
    return False


_Encoder = Callable[[_Reader, list[str]], tuple[bytes, bytes] | None]


def _address(family: int, spelling: str) -> _Encoder:
    """An encoder for A or AAAA text made of ``spelling`` only: on such text libc's
    ``inet_pton`` and dnspython agree byte for byte, errors included (the differential test
    tries the corner cases); anything fancier (an embedded IPv4 address) goes to dnspython."""
    simple = re.compile(spelling).fullmatch

    def encode(reader: _Reader, fields: list[str]) -> tuple[bytes, bytes] | None:
        if len(fields) != 1 or simple(fields[0]) is None:
            return None
        try:
            wire = socket.inet_pton(family, fields[0])
        except OSError:
            return None
        return wire, wire

    return encode


def _target(reader: _Reader, fields: list[str]) -> tuple[bytes, bytes] | None:
    if len(fields) != 1:
        return None
    wire = reader._rdata_name(fields[0])
    return None if wire is None else (wire, wire.lower())


def _mx(reader: _Reader, fields: list[str]) -> tuple[bytes, bytes] | None:
    if len(fields) != 2 or not (fields[0].isascii() and fields[0].isdigit()):
        return None
    preference = int(fields[0])
    wire = reader._rdata_name(fields[1])
    if preference > 0xFFFF or wire is None:
        return None
    packed = _PREFERENCE.pack(preference)
    return packed + wire, packed + wire.lower()


_ENCODERS = {
    dns.rdatatype.A: _address(socket.AF_INET, "[0-9.]+"),
    dns.rdatatype.AAAA: _address(socket.AF_INET6, "[0-9A-Fa-f:]+"),
    dns.rdatatype.NS: _target,
    dns.rdatatype.CNAME: _target,
    dns.rdatatype.PTR: _target,
    dns.rdatatype.MX: _mx,
}
