"""Zone files → an immutable :class:`ZoneSet`.

dnspython does the parsing. This module adds what a server needs before it answers from the data:
every problem named by file and line, ``$INCLUDE`` paths taken relative to the including file, and
the checks that dnspython's reader skips or leaves to its caller (SOA and NS at the apex, owners
outside the zone, a second SOA or CNAME that would silently replace the first).

Names are kept absolute (``relativize=False``): what is asked is what is looked up, and answers
render to wire without an origin.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tokenizer
import dns.transaction
import dns.zone
import dns.zonefile

from nameserver.config import LoadError, ZoneSettings

#: Where a statement starts: the file it is in and its 1-based line.
_Location = tuple[str, int]


class ZoneError(LoadError):
    """A zone cannot be served; each error is ``ZONEFILE:LINE: problem``.

    The line is left out only when none applies, as for a file that cannot be opened.
    """


@dataclass(frozen=True, eq=False)
class HostedZone:
    """One loaded zone. ``zone`` is shared by every worker and must not be changed after load.

    Compared by identity: two loads of one file are two generations, and comparing zones
    node by node would be slow.
    """

    origin: dns.name.Name
    zone: dns.zone.Zone
    file: pathlib.Path
    serial: int
    records: int


class ZoneSet:
    """Immutable set of hosted zones; one generation of served data."""

    def __init__(self, zones: Iterable[HostedZone]) -> None:
        ordered = sorted(zones, key=lambda hosted: hosted.origin)
        self._by_origin = {hosted.origin: hosted for hosted in ordered}
        if len(self._by_origin) != len(ordered):
            raise ValueError("a zone origin is hosted twice")

    def find(self, qname: dns.name.Name) -> HostedZone | None:
        """The closest enclosing hosted zone, so a hosted child wins over its hosted parent.

        One dictionary probe per label of ``qname``; :class:`dns.name.Name` hashes and compares
        without regard to case.
        """
        labels = qname.labels
        for start in range(len(labels)):
            hosted = self._by_origin.get(dns.name.Name(labels[start:]))
            if hosted is not None:
                return hosted
        return None

    def __iter__(self) -> Iterator[HostedZone]:
        return iter(self._by_origin.values())

    def __len__(self) -> int:
        return len(self._by_origin)


def load_zones(settings: Iterable[ZoneSettings]) -> ZoneSet:
    """Load every zone, or raise one :class:`ZoneError` with the problems of all of them."""
    zones: list[HostedZone] = []
    errors: list[str] = []
    for each in settings:
        try:
            zones.append(load_zone(each))
        except ZoneError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ZoneError(errors)
    return ZoneSet(zones)


def load_zone(settings: ZoneSettings) -> HostedZone:
    """Load and check one zone file.

    :raises ZoneError: with every problem found; a syntax error ends the reading of its file.
    """
    try:
        text = settings.file.open(encoding="utf-8")
    except OSError as exc:
        raise ZoneError([f"{settings.file}: cannot read: {exc.strerror}"]) from None
    zone = dns.zone.Zone(settings.name, relativize=False)
    with text:
        errors = _read(zone, _Reader(text, str(settings.file), zone.writer(replacement=True)))
    if errors:
        raise ZoneError(errors)
    records = sum(len(rdataset) for _, rdataset in zone.iterate_rdatasets())
    return HostedZone(settings.name, zone, settings.file, zone.get_soa().serial, records)


def _read(zone: dns.zone.Zone, reader: _Reader) -> list[str]:
    """Run the reader into the zone; the problems it found, then those of the zone as a whole."""
    try:
        with reader.txn:
            reader.read()
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        # The reader stops at the first of these; the transaction has been rolled back.
        return [*reader.problems, reader.failure(exc)]
    finally:
        reader.close_includes()
    # A missing record has no line of its own; point at where the zone's data begins.
    apex = reader.first_record or (reader.tok.filename, 1)
    return reader.problems + [
        _at(apex, f"no {dns.rdatatype.to_text(rdtype)} record at the zone apex {zone.origin}")
        for rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS)
        if zone.get_rdataset(zone.origin, rdtype) is None
    ]


def _at(location: _Location, problem: str) -> str:
    return f"{location[0]}:{location[1]}: {problem}"


class _Tokenizer(dns.tokenizer.Tokenizer):
    """dnspython's tokenizer, knowing where each statement starts and where its file lives.

    :meth:`where` is the line the current statement starts on. dnspython's own answer is the line
    read up to: one past the record when its last token ends the line (the newline is read, then
    pushed back), and the last line of a record in parentheses.

    The name after ``$INCLUDE`` comes back joined to this file's folder. dnspython's reader opens
    it as written, so relative to the process's working directory, which for a daemon is ``/``.
    """

    def __init__(
        self, f: TextIO, filename: str, idna_codec: dns.name.IDNACodec | None = None
    ) -> None:
        super().__init__(f, filename, idna_codec)
        self._folder = pathlib.Path(filename).parent
        self._statement_line = 1
        self._at_statement_start = True
        self._include_follows = False

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        # A statement starts on a fresh line, after the newline has been consumed, so the line
        # count is exact here and only here.
        line = self.line_number
        token = super().get(want_leading, want_comment)
        if self._include_follows and (token.is_identifier() or token.is_quoted_string()):
            path = str(self._folder / token.value)
            token = dns.tokenizer.Token(token.ttype, path, token.has_escape)
        self._include_follows = (
            self._at_statement_start and token.is_identifier() and token.value.upper() == "$INCLUDE"
        )
        if self._at_statement_start:
            self._statement_line = line
        self._at_statement_start = token.is_eol()
        return token

    def where(self) -> _Location:
        return self.filename, self._statement_line


class _Reader(dns.zonefile.Reader):
    """dnspython's zone file reader, reporting what it would drop or overwrite without a word."""

    def __init__(self, text: TextIO, filename: str, txn: dns.transaction.Transaction) -> None:
        self.problems: list[str] = []
        self.first_record: _Location | None = None
        self._includes: list[TextIO] = []
        # Registered before the reader's own CNAME check, so it sees each record first.
        txn.check_put_rdataset(self._check_put)
        super().__init__(_Tokenizer(text, filename), dns.rdataclass.IN, txn, allow_include=True)

    @property
    def tok(self) -> _Tokenizer:
        return self._tok

    @tok.setter
    def tok(self, tok: dns.tokenizer.Tokenizer) -> None:
        # read() opens each $INCLUDE with a plain Tokenizer; swap it before its first token.
        if not isinstance(tok, _Tokenizer):
            self._includes.append(tok.file)
            tok = _Tokenizer(tok.file, tok.filename, tok.idna_codec)
        self._tok = tok

    def close_includes(self) -> None:
        """Close the included files, which read() leaves open when it stops on an error."""
        for f in self._includes:
            f.close()

    def locate(self, problem: str) -> str:
        return _at(self.tok.where(), problem)

    def failure(self, exc: Exception) -> str:
        """Word and locate what stopped the reader; some dnspython messages carry a location."""
        filename, line = self.tok.where()
        if isinstance(exc, dns.zonefile.CNAMEAndOtherData):
            problem = f"{self.last_name} has a CNAME and other data"
        elif isinstance(exc, OSError):
            problem = f"cannot read {exc.filename}: {exc.strerror}"
        elif isinstance(exc, UnicodeDecodeError):
            line, problem = _undecodable_line(filename), "not UTF-8 text"
        else:
            problem = str(exc).removeprefix(f"{filename}:{line}: ")
        return _at((filename, line), problem)

    def _eat_line(self) -> None:
        # dnspython calls this only to skip a record whose owner is outside the zone.
        self.problems.append(
            self.locate(f"{self.last_name} is outside the zone {self.zone_origin}")
        )
        super()._eat_line()

    def _check_put(
        self, txn: dns.transaction.Transaction, name: dns.name.Name, rdataset: dns.rdataset.Rdataset
    ) -> None:
        self.first_record = self.first_record or self.tok.where()
        existing = txn.get(name, rdataset.rdtype, rdataset.covers)
        if (
            existing is not None
            and existing != rdataset
            and dns.rdatatype.is_singleton(rdataset.rdtype)
        ):
            rdtype = dns.rdatatype.to_text(rdataset.rdtype)
            self.problems.append(
                self.locate(f"{name} has a second {rdtype} record; only one is allowed")
            )


def _undecodable_line(filename: str) -> int:
    """Where the first non-UTF-8 byte is: the decoder knows only its offset in a read chunk."""
    text = pathlib.Path(filename).read_bytes().decode("utf-8", errors="replace")
    return text.count("\n", 0, text.find("\ufffd")) + 1
