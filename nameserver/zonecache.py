"""Compiled zones saved on disk, so that a restart with unchanged zone files skips compiling.

An entry is valid for exact file contents: it lists every file the zone was read from (the zone
file and each ``$INCLUDE``) with the SHA-256 of its bytes, and is used only when every one of
them still has those bytes. Each zone (origin and file) has one entry, which a new compile
replaces. Entries are written to a temporary file and renamed, so a reader sees a whole entry or
none; a digest over the payload catches what the disk or an operator did to it since, before
:mod:`marshal` (which is not made to read damaged data) sees a byte. A bad entry costs a compile
and a log line, never the start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import pathlib
import sys
import tempfile

import dns.name
import dns.version

from nameserver import zonestore

log = logging.getLogger(__name__)

#: What a compiled zone depends on besides its files: our encoding, dnspython's rdata wire
#: forms and marshal's format. A change to any of them makes every saved entry stale.
FORMAT = (
    f"nameserverd-zone {zonestore.FORMAT} dnspython {dns.version.version} "
    f"python {sys.version_info[0]}.{sys.version_info[1]}\n"
).encode()

#: A file a zone was read from, and the SHA-256 (hex) of the bytes that were read.
Source = tuple[str, str]


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source(path: str) -> Source:
    """A file and the digest of its bytes now; an unreadable file gets one nothing matches."""
    try:
        return path, fingerprint(pathlib.Path(path).read_bytes())
    except OSError:
        return path, ""


def unchanged(sources: tuple[Source, ...]) -> bool:
    """Whether every file still holds the bytes it held when the zone was compiled."""
    return all(source(path) == (path, digest) for path, digest in sources)


class ZoneCache:
    """The entries in one folder (``server.cache_dir``)."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.folder = folder

    def entry(self, origin: dns.name.Name, file: pathlib.Path) -> pathlib.Path:
        key = fingerprint(f"{origin.to_text().lower()}\0{file}".encode())
        return self.folder / f"{key[:32]}.zone"

    def load(
        self, origin: dns.name.Name, sources: tuple[Source, ...]
    ) -> tuple[zonestore.ZoneData, tuple[Source, ...]] | None:
        """The saved compile of ``origin`` from the zone file ``sources[0]`` (path and digest
        of what was just read), with every file it was read from; ``None`` when there is none
        that still matches."""
        file = pathlib.Path(sources[0][0])
        path = self.entry(origin, file)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("cannot read the cached zone %s: %s", path, error.strerror)
            return None
        if not raw.startswith(FORMAT):
            log.info("cached zone %s was written by another version; compiling", path)
            return None
        digest, payload = raw[len(FORMAT) : len(FORMAT) + 32], raw[len(FORMAT) + 32 :]
        try:
            if hashlib.sha256(payload).digest() != digest:
                raise ValueError("checksum mismatch")
            saved_origin, saved_sources, saved = marshal.loads(payload)
            if saved_origin != origin.to_text().lower():
                raise ValueError("entry of another zone")
            data = zonestore.ZoneData.from_marshal(origin, saved)
        except (ValueError, TypeError, EOFError) as error:
            log.warning("ignoring the damaged cached zone %s: %s", path, error)
            return None
        if saved_sources[0] != sources[0] or not unchanged(saved_sources[1:]):
            return None
        return data, saved_sources

    def store(
        self, origin: dns.name.Name, sources: tuple[Source, ...], data: zonestore.ZoneData
    ) -> None:
        """Save a compile, replacing the zone's previous entry; a failure is only logged."""
        path = self.entry(origin, pathlib.Path(sources[0][0]))
        payload = marshal.dumps((origin.to_text().lower(), sources, data.to_marshal()))
        try:
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(FORMAT + hashlib.sha256(payload).digest() + payload)
                os.replace(temporary, path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            log.warning("cannot save the compiled zone %s in %s: %s", origin, self.folder, error)
