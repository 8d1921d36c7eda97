"""Zone files → an immutable :class:`ZoneSet`.

A zone file is compiled into a :class:`~nameserver.zonestore.ZoneData`, bytes instead of
dnspython objects, by the fast reader of :mod:`nameserver.zonefile`. dnspython's reader is the
reference and reads every file the fast reader does not vouch for; this module adds to it what a
server needs: every problem named by file and line, ``$INCLUDE`` paths taken relative to the
including file, and the checks that dnspython's reader skips or leaves to its caller (SOA and NS
at the apex, owners outside the zone, a second SOA or CNAME that would silently replace the
first).

Compiling is skipped when it can be: a reload keeps a loaded zone whose files have the same
bytes, and a start takes the compile saved in ``server.cache_dir`` (:mod:`nameserver.zonecache`).

Names are kept absolute (``relativize=False``): what is asked is what is looked up, and answers
render to wire without an origin.
"""

from __future__ import annotations

import io
import logging
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

from nameserver import zonefile
from nameserver.config import LoadError, ZoneSettings
from nameserver.zonecache import Source, ZoneCache, fingerprint, source, unchanged
from nameserver.zonestore import ZoneData

log = logging.getLogger(__name__)

#: Where a statement starts: the file it is in and its 1-based line.
_Location = tuple[str, int]


class ZoneError(LoadError):
    """A zone cannot be served; each error is ``ZONEFILE:LINE: problem``.

    The line is left out only when none applies, as for a file that cannot be opened.
    """


@dataclass(frozen=True, eq=False)
class HostedZone:
    """One loaded zone. ``zone`` is shared by every worker and never changes after load.

    ``sources`` are the files it was read from with the digests of their bytes: while they
    hold the same bytes, a reload keeps this zone instead of compiling it again. Compared by
    identity: two loads of one file are two generations.
    """

    origin: dns.name.Name
    zone: ZoneData
    file: pathlib.Path
    serial: int
    records: int
    sources: tuple[Source, ...] = ()


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

    def get(self, origin: dns.name.Name) -> HostedZone | None:
        """The zone whose origin is ``origin``, if hosted."""
        return self._by_origin.get(origin)

    def __iter__(self) -> Iterator[HostedZone]:
        return iter(self._by_origin.values())

    def __len__(self) -> int:
        return len(self._by_origin)


def load_zones(
    settings: Iterable[ZoneSettings],
    cache_dir: pathlib.Path | None = None,
    previous: ZoneSet | None = None,
) -> ZoneSet:
    """Load every zone, or raise one :class:`ZoneError` with the problems of all of them.

    ``previous`` is the set being served: a zone of it whose files are unchanged is kept.
    ``cache_dir`` holds compiled zones across restarts; ``None`` is no disk cache.
    """
    cache = None if cache_dir is None else ZoneCache(cache_dir)
    zones: list[HostedZone] = []
    errors: list[str] = []
    for each in settings:
        kept = None if previous is None else previous.get(each.name)
        try:
            zones.append(load_zone(each, cache, kept))
        except ZoneError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ZoneError(errors)
    return ZoneSet(zones)


def load_zone(
    settings: ZoneSettings, cache: ZoneCache | None = None, previous: HostedZone | None = None
) -> HostedZone:
    """Load and check one zone file: ``previous`` if its files are unchanged, else the saved
    compile in ``cache`` if there is one for these files, else compile it (and save that).

    :raises ZoneError: with every problem found; a syntax error ends the reading of its file.
    """
    try:
        data = settings.file.read_bytes()
    except OSError as exc:
        raise ZoneError([f"{settings.file}: cannot read: {exc.strerror}"]) from None
    main: Source = (str(settings.file), fingerprint(data))
    if previous is not None and previous.file == settings.file and _unchanged(previous, main):
        log.debug("zone %s unchanged", settings.name)
        return previous
    saved = None if cache is None else cache.load(settings.name, (main,))
    if saved is not None:
        log.info("zone %s: compiled zone taken from %s", settings.name, cache.folder)
        zone, sources = saved
    else:
        zone, sources = _compile(settings, data)
        if cache is not None:
            cache.store(settings.name, sources, zone)
    return HostedZone(settings.name, zone, settings.file, zone.serial, zone.count, sources)


def _unchanged(hosted: HostedZone, main: Source) -> bool:
    return bool(hosted.sources) and hosted.sources[0] == main and unchanged(hosted.sources[1:])


def _compile(settings: ZoneSettings, data: bytes) -> tuple[ZoneData, tuple[Source, ...]]:
    """The fast reader's compile, or dnspython's when the fast reader cannot vouch for it."""
    try:
        zone, sources = zonefile.read(settings.file, data, settings.name)
        return zone, tuple(sources)
    except zonefile.Unsupported as reason:
        log.debug("zone %s read by dnspython: %s", settings.name, reason)
    checked, included = read_reference(settings, data)
    main = (str(settings.file), fingerprint(data))
    return ZoneData.from_zone(checked), (main, *(source(name) for name in included))


def read_reference(settings: ZoneSettings, data: bytes) -> tuple[dns.zone.Zone, list[str]]:
    """The zone file holding ``data``, read and checked with dnspython's reader; the files
    ``$INCLUDE`` brought in.

    :raises ZoneError: with every problem found; a syntax error ends the reading of its file.
    """
    zone = dns.zone.Zone(settings.name, relativize=False)
    # Decoded as read, as from the file itself, so an undecodable line is reported as such.
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    reader = _Reader(text, str(settings.file), zone.writer(replacement=True))
    errors = _read(zone, reader)
    if errors:
        raise ZoneError(errors)
    return zone, reader.included


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
        #: The files ``$INCLUDE`` brought in, in order, as opened.
        self.included: list[str] = []
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
            self.included.append(tok.filename)
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
