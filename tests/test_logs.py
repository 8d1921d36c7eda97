"""nameserver.logs: each format on stderr, in a file and under the journal; the query log; the
``log`` configuration section. No sockets: the journal is stood in for by whatever file pytest
captures stderr into, named in ``JOURNAL_STREAM`` by its device and inode."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pytest
from test_config import ZONES, errors, write
from test_config import folder as folder  # a fixture, used by name

from nameserver import logs
from nameserver.config import LogSettings, load_config

MOMENT = datetime(2026, 11, 25, 17, 3, 13, tzinfo=UTC).timestamp()
STAMP = "2026-11-25T17:03:13.587Z"
QUERY = {
    "client": "::ffff:192.0.2.7",
    "local": "127.0.0.53",
    "transport": "udp",
    "qname": "www.example.com.",
    "qtype": "A",
    "rcode": "NOERROR",
    "size": 61,
    "microseconds": 143,
}
QUERY_TEXT = (
    "query client=192.0.2.7 local=127.0.0.53 transport=udp qname=www.example.com. qtype=A "
    "rcode=NOERROR size=61 us=143"
)
server = logging.getLogger("nameserver.server")


@pytest.fixture(autouse=True)
def pristine_logging() -> Iterator[None]:
    """Leave the root logger, the query logger and the record factory as they were.

    Only the handler ``configure`` installed is taken off: pytest adds and removes its own
    around each phase of a test, so restoring a snapshot of the list would break its capture.
    """
    root, queries = logging.getLogger(), logging.getLogger(logs.QUERIES)
    levels, factory = (root.level, queries.level), logging.getLogRecordFactory()
    yield
    for handler in [h for h in root.handlers if h.name == logs.HANDLER]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(levels[0])
    queries.setLevel(levels[1])
    logging.setLogRecordFactory(factory)


@pytest.fixture
def clock() -> Iterator[None]:
    """Every record made at MOMENT, on a host nine hours east of UTC, so that stamps are exact
    and local time would show."""
    make = logging.getLogRecordFactory()

    def at_moment(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.created, record.msecs = MOMENT + 0.587, 587.0
        return record

    logging.setLogRecordFactory(at_moment)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "JST-9")
        time.tzset()
        yield
    time.tzset()


def journal(stream: TextIO | None = None) -> dict[str, str]:
    """An environment in which ``stream`` (stderr unless named) is the journal's, as systemd
    sets it. Under ``capfd`` stderr is a real file, so it has a device and an inode."""
    status = os.fstat((stream or sys.stderr).fileno())
    return {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}


def err(capfd: pytest.CaptureFixture[str]) -> list[str]:
    return capfd.readouterr().err.splitlines()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def fail() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        server.exception("internal error answering a udp query")


@pytest.mark.usefixtures("clock")
def test_text_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(), environ={})
    server.info("serving %s", "example.com.")
    server.warning("odd", extra={"zone": "example.com.", "note": 'a "b"=c'})
    assert err(capfd) == [
        f"{STAMP} INFO nameserver.server: serving example.com.",
        f'{STAMP} WARNING nameserver.server: odd zone=example.com. note="a \\"b\\"=c"',
    ]


@pytest.mark.usefixtures("clock")
def test_json_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(format="json"), environ={})
    server.info("serving %s", "example.com.", extra={"zones": 1, "level": "error"})
    assert [json.loads(line) for line in err(capfd)] == [
        {
            "time": STAMP,
            "level": "info",
            "logger": "nameserver.server",
            "message": "serving example.com.",
            "zones": 1,
        }
    ]


def test_journal_text_has_priorities_and_no_time(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(level="debug"), environ=journal())
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        server.log(level, "hello")
    assert err(capfd) == [
        "<7>nameserver.server: hello",
        "<6>nameserver.server: hello",
        "<4>nameserver.server: hello",
        "<3>nameserver.server: hello",
        "<2>nameserver.server: hello",
    ]


def test_journal_json_has_a_priority_and_no_time(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(format="json"), environ=journal())
    server.warning("odd")
    [line] = err(capfd)
    assert line.startswith("<4>{")
    assert json.loads(line[3:]) == {
        "level": "warning",
        "logger": "nameserver.server",
        "message": "odd",
    }


@pytest.mark.usefixtures("clock")
def test_journal_stream_naming_another_file_is_not_the_journal(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """systemd sets JOURNAL_STREAM when only stdout is the journal (StandardError=file:…)."""
    with (tmp_path / "stdout").open("w") as stdout:
        logs.configure(LogSettings(), environ=journal(stdout))
    server.info("hello")
    assert err(capfd) == [f"{STAMP} INFO nameserver.server: hello"]


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("debug", ["DEBUG", "INFO", "WARNING", "ERROR"]),
        ("info", ["INFO", "WARNING", "ERROR"]),
        ("warning", ["WARNING", "ERROR"]),
        ("error", ["ERROR"]),
    ],
)
def test_level_filters(capfd: pytest.CaptureFixture[str], level: str, shown: list[str]) -> None:
    logs.configure(LogSettings(level=level), environ={})
    for name in ("debug", "info", "warning", "error"):
        getattr(server, name)("hello")
    assert [line.split()[1] for line in err(capfd)] == shown


def test_text_exception_keeps_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(), environ={})
    fail()
    text = err(capfd)
    assert text[0].endswith(" ERROR nameserver.server: internal error answering a udp query")
    assert text[1] == "Traceback (most recent call last):"
    assert text[-1] == "ZeroDivisionError: division by zero"


def test_journal_exception_prefixes_every_line(capfd: pytest.CaptureFixture[str]) -> None:
    """journald files each line apart: every one must say it belongs to an error."""
    logs.configure(LogSettings(), environ=journal())
    fail()
    text = err(capfd)
    assert text[0] == "<3>nameserver.server: internal error answering a udp query"
    assert text[1] == "<3>Traceback (most recent call last):"
    assert text[-1] == "<3>ZeroDivisionError: division by zero"
    assert all(line.startswith("<3>") for line in text)


def test_json_exception_is_a_field_of_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(format="json"), environ=journal())
    fail()
    [line] = err(capfd)
    record = json.loads(line.removeprefix("<3>"))
    assert record["message"] == "internal error answering a udp query"
    assert record["exception"].startswith("Traceback (most recent call last):\n")
    assert record["exception"].endswith("ZeroDivisionError: division by zero")


@pytest.mark.usefixtures("clock")
def test_query_line_in_text_and_json(capfd: pytest.CaptureFixture[str]) -> None:
    """Shown even at level error: the query log is a switch of its own."""
    logs.configure(LogSettings(level="error", queries=True), environ={})
    logs.QueryLog(enabled=True).record(**QUERY)
    logs.configure(LogSettings(level="error", format="json", queries=True), environ={})
    logs.QueryLog(enabled=True).record(**QUERY)
    text, line = err(capfd)
    assert text == f"{STAMP} INFO nameserverd.queries: {QUERY_TEXT}"
    assert json.loads(line) == {
        "time": STAMP,
        "level": "info",
        "logger": "nameserverd.queries",
        "message": "query",
        "client": "192.0.2.7",
        "local": "127.0.0.53",
        "transport": "udp",
        "qname": "www.example.com.",
        "qtype": "A",
        "rcode": "NOERROR",
        "size": 61,
        "us": 143,
    }


@pytest.mark.parametrize("enabled", [False, True])
def test_disabled_query_log_builds_no_record(
    capfd: pytest.CaptureFixture[str], enabled: bool
) -> None:
    logs.configure(LogSettings(queries=True), environ={})
    made: list[logging.LogRecord] = []
    make = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(make(*args, **kwargs))
        return made[-1]

    logging.setLogRecordFactory(counting)
    logs.QueryLog(enabled).record(**QUERY)
    assert len(made) == len(err(capfd)) == int(enabled)


@pytest.mark.parametrize(
    ("client", "shown"),
    [
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("::ffff:0:192.0.2.7", "::ffff:0:192.0.2.7"),  # IPv4-translated, not mapped
        ("::ffff:1", "::ffff:1"),
    ],
)
def test_mapped_addresses_are_unmapped(
    capfd: pytest.CaptureFixture[str], client: str, shown: str
) -> None:
    logs.configure(LogSettings(queries=True), environ={})
    logs.QueryLog(enabled=True).record(**{**QUERY, "client": client, "local": client})
    [line] = err(capfd)
    assert f" client={shown} local={shown} " in line


def test_file_gets_timestamps_even_under_the_journal(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "nameserverd.log"
    logs.configure(LogSettings(file=path), environ=journal())
    server.info("hello")
    assert err(capfd) == []
    [line] = lines(path)
    assert line.endswith("Z INFO nameserver.server: hello")


def test_reopen_after_rename_writes_to_a_new_file(tmp_path: Path) -> None:
    path, rotated = tmp_path / "nameserverd.log", tmp_path / "nameserverd.log.1"
    logs.configure(LogSettings(file=path))
    server.info("before")
    path.rename(rotated)
    server.info("renamed")  # still into the open file, as until logrotate's postrotate runs
    logs.reopen()
    server.info("after")
    assert [line.split(": ")[1] for line in lines(rotated)] == ["before", "renamed"]
    assert [line.split(": ")[1] for line in lines(path)] == ["after"]


def test_reopen_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    path, kept = tmp_path / "logs" / "nameserverd.log", tmp_path / "kept.log"
    logs.configure(LogSettings(file=path))
    path.rename(kept)
    path.parent.rmdir()
    logs.reopen()
    server.info("after")
    assert [line.split(": ", 1)[1] for line in lines(kept)] == [
        f"cannot reopen {path}, still writing to the old file: "
        f"[Errno 2] No such file or directory: '{path}'",
        "after",
    ]


def test_reopen_on_stderr_does_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(), environ={})
    logs.reopen()
    server.info("hello")
    assert len(err(capfd)) == 1


def test_configure_again_replaces_the_handler(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "nameserverd.log"
    logs.configure(LogSettings(file=path), environ={})
    [handler] = [h for h in logging.getLogger().handlers if h.name == logs.HANDLER]
    logs.configure(LogSettings(), environ={})
    logs.configure(LogSettings(), environ={})
    server.info("hello")
    assert handler.stream is None  # closed
    assert lines(path) == []
    assert len(err(capfd)) == 1


def test_configure_that_fails_keeps_the_old_handler(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A reload naming a file that cannot be opened must not leave the daemon mute."""
    logs.configure(LogSettings(), environ={})
    with pytest.raises(FileNotFoundError):
        logs.configure(LogSettings(file=tmp_path / "gone" / "nameserverd.log"), environ={})
    server.info("hello")
    assert len(err(capfd)) == 1


def test_log_section_is_read(folder: Path) -> None:
    text = "log:\n  level: debug\n  format: json\n  queries: true\n  file: log/ns.log\n"
    (folder / "log").mkdir()
    config = load_config(write(folder, ZONES + text))
    assert config.log == LogSettings("debug", "json", True, folder / "log" / "ns.log")


@pytest.mark.parametrize("text", ["", "log:\n", "log:\n  file: null\n"])
def test_log_defaults(folder: Path, text: str) -> None:
    assert load_config(write(folder, ZONES + text)).log == LogSettings("info", "text", False, None)


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("level: loud", "log.level: expected one of debug, info, warning, error, got 'loud'"),
        ("level: INFO", "log.level: expected one of debug, info, warning, error, got 'INFO'"),
        ("level: 3", "log.level: expected one of debug, info, warning, error, got the integer 3"),
        ("format: yaml", "log.format: expected one of text, json, got 'yaml'"),
        ('queries: "yes"', "log.queries: expected true or false, got the string 'yes'"),
        ("file: 7", "log.file: expected a file name or null, got the integer 7"),
        ("file: zones", "log.file: {folder}/zones is a folder, not a file"),
        ("file: nowhere/ns.log", "log.file: folder {folder}/nowhere does not exist"),
        ("colour: blue", "log.colour: unknown key; allowed: level, format, queries, file"),
    ],
)
def test_bad_log_setting(folder: Path, setting: str, problem: str) -> None:
    path = write(folder, ZONES + f"log:\n  {setting}\n")
    assert errors(path) == [f"{path}:5: {problem.format(folder=folder)}"]
