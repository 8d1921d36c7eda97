"""Where log lines go and what they look like: stderr or a file, text or JSON, journal-aware.

A person reading a terminal or a file wants a UTC timestamp on every line. The systemd journal
stamps lines itself and takes a ``<N>`` syslog priority prefix (sd-daemon(3)) off each one, so
under it a timestamp is noise and the prefix is what makes ``journalctl -p err`` work. A log
shipper wants one JSON object per line. The query log goes through the same handler, so it lands
wherever the rest does.

The handler installed here is found again by its name on the root logger rather than kept in a
global: a reload replaces exactly it, ``reopen()`` finds it, and handlers others attach stay.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from nameserver.config import LogSettings

#: The logger of the query log.
QUERIES = "nameserverd.queries"
#: The name of the root handler ``configure`` installs; a later call replaces the one so named.
HANDLER = "nameserverd"

log = logging.getLogger(__name__)
_queries = logging.getLogger(QUERIES)

# sd-daemon(3) SD_CRIT, SD_ERR, SD_WARNING, SD_INFO; anything below info is SD_DEBUG (7).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
# What every record has; anything else on a record came from ``extra=``.
_STANDARD = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"}
# A value written bare in key=value text: printable ASCII but space, '"' and '='. Anything else
# is quoted, so that no value can fake a key or start a line of its own.
_BARE = re.compile(r"[!#-<>-~]+")


def configure(settings: LogSettings, environ: Mapping[str, str] = os.environ) -> None:
    """(Re)configure the root logger: where lines go, their format, and the level.

    The new handler is opened before the old one is touched, so a reload naming a file that
    cannot be opened raises ``OSError`` and leaves logging as it was. The query logger gets its
    own level: ``log.queries`` is a switch of its own, which ``log.level: error`` must not undo.
    """
    if settings.file is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        journal = _is_journal(sys.stderr, environ)
    else:
        handler = _File(settings.file, encoding="utf-8")
        journal = False
    inner = _Json(not journal) if settings.format == "json" else _Text(not journal)
    handler.setFormatter(_Journal(inner) if journal else inner)
    root = logging.getLogger()
    old = _installed()
    if old is not None:
        root.removeHandler(old)
        old.close()
    handler.set_name(HANDLER)  # after close(), which unregisters the name it shares
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    _queries.setLevel(logging.INFO)


def reopen() -> None:
    """Reopen the log file by its path, so that after logrotate renamed it lines go to a new one.

    No-op when logging to stderr. Call it from the main loop once a SIGUSR1 handler has queued
    the signal, never from the handler itself: it opens a file and takes the log handler's lock,
    and the code the signal interrupted may be halfway through writing a line. A file that cannot
    be opened (its folder gone, or not writable once privileges were dropped) is logged, and lines
    keep going to the old file rather than nowhere.
    """
    handler = _installed()
    if isinstance(handler, _File):
        try:
            handler.reopen()
        except OSError as error:
            log.error(
                "cannot reopen %s, still writing to the old file: %s", handler.baseFilename, error
            )


class QueryLog:
    """One line per answered query, on the logger ``nameserverd.queries``.

    ``record`` is called for every query, so a disabled log returns before building anything.
    The hot path should still test ``enabled`` first: the call alone, with eight keywords, costs
    about five times that test, before counting the making of its arguments.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def record(
        self,
        *,
        client: str,
        local: str,
        transport: str,
        qname: str,
        qtype: str,
        rcode: str,
        size: int,
        microseconds: int,
    ) -> None:
        if not self.enabled:
            return
        fields = {
            "client": _unmapped(client),
            "local": _unmapped(local),
            "transport": transport,
            "qname": qname,
            "qtype": qtype,
            "rcode": rcode,
            "size": size,
            "us": microseconds,
        }
        _queries.info("query", extra=fields)


def _unmapped(address: str) -> str:
    """``::ffff:192.0.2.7`` (an IPv4 client on a dual-stack socket) as ``192.0.2.7``, the address
    an operator searches for. The test is on the text the socket module writes (inet_ntop), which
    is cheap; ``::ffff:0:192.0.2.7`` and the like are other addresses and stay as they are."""
    rest = address.removeprefix("::ffff:")
    return rest if "." in rest and ":" not in rest else address


def _installed() -> logging.Handler | None:
    return next((h for h in logging.getLogger().handlers if h.name == HANDLER), None)


def _is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is connected to the journal.

    systemd.exec(5) says to compare ``$JOURNAL_STREAM`` (``DEVICE:INODE``) with the stream itself:
    the variable is also set when only stdout goes to the journal (``StandardError=file:…``), and
    children inherit it whatever their stderr is. Those get timestamps, as any file should.
    """
    expected = environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        status = os.fstat(stream.fileno())
    except OSError:  # no file descriptor behind it (io.UnsupportedOperation is an OSError)
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in vars(record).items() if key not in _STANDARD]


def _logfmt(value: object) -> str:
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text)


class _File(logging.FileHandler):
    def reopen(self) -> None:
        """Swap in a fresh stream under the handler's lock, then close the old (renamed) one."""
        self.setStream(self._open()).close()


class _Utc(logging.Formatter):
    """Timestamps as RFC 3339 in UTC with milliseconds: ``2026-11-25T17:03:13.587Z``, the same
    on every host whatever its time zone, and sortable as text."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


class _Text(_Utc):
    """``TIME LEVEL logger: message key=value…``: extra fields after the message, so that a grep
    for a message still finds it, and before any traceback, so that they stay on its line."""

    def __init__(self, timestamps: bool) -> None:
        prefix = "%(asctime)s %(levelname)s " if timestamps else ""
        super().__init__(prefix + "%(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        pairs = "".join(f" {key}={_logfmt(value)}" for key, value in _extras(record))
        return super().formatMessage(record) + pairs


class _Json(_Utc):
    """One JSON object per line; a traceback is the field ``exception``, so it stays in the
    object instead of breaking the line. Extra fields never replace the standard ones: a stray
    ``level`` must not make a line lie about its level."""

    def __init__(self, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": self.formatTime(record)} if self.timestamps else {}
        fields["level"] = record.levelname.lower()
        fields["logger"] = record.name
        fields["message"] = record.getMessage()
        for key, value in _extras(record):
            fields.setdefault(key, value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return json.dumps(fields, default=str, separators=(",", ":"))


class _Journal(logging.Formatter):
    """Another formatter's output with the record's priority before every line.

    journald splits its stream at newlines and reads a prefix per line; the continuation lines of
    a traceback would otherwise be filed at the unit's default priority (info) and drop out of
    ``journalctl -p err``. Prefixed, each line is its own entry, but every one of them an error.
    A JSON line has no newline inside, so it stays one entry.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelno
        priority = next((p for floor, p in _PRIORITIES if level >= floor), 7)
        return "\n".join(f"<{priority}>{line}" for line in self.inner.format(record).split("\n"))
