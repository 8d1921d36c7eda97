"""Compiling is skipped when the zone files are unchanged: a reload keeps the loaded zone, and a
start takes the compile saved in server.cache_dir. A changed, damaged or stale entry costs a
compile and a log line, never the start."""

import logging
from pathlib import Path

import dns.name
import pytest

from nameserver import zonecache, zones
from nameserver.config import ZoneSettings
from nameserver.lookup import ZoneIndex
from nameserver.zonecache import ZoneCache
from nameserver.zones import ZoneError, load_zones

EXAMPLE = dns.name.from_text("example.com.")
APEX = "$TTL 300\n@ SOA ns hostmaster 7 7200 3600 1209600 300\n@ NS ns\nns A 192.0.2.53\n"


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    (tmp_path / "hosts.inc").write_text("www A 192.0.2.80\n")
    path = tmp_path / "example.com.zone"
    path.write_text(APEX + "$INCLUDE hosts.inc\n")
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The zone files compiled (not taken from a cache) from now on."""
    compiled: list[Path] = []
    real = zones._compile

    def counting(settings: ZoneSettings, data: bytes) -> object:
        compiled.append(settings.file)
        return real(settings, data)

    monkeypatch.setattr(zones, "_compile", counting)
    return compiled


def load(zone_file: Path, cache_dir: Path | None, previous: zones.ZoneSet | None = None):
    return load_zones([ZoneSettings(EXAMPLE, zone_file)], cache_dir, previous)


def address(zone_set: zones.ZoneSet, name: str) -> list[str]:
    [hosted] = zone_set
    found = ZoneIndex(hosted.zone).rdataset(dns.name.from_text(name), dns.rdatatype.A)
    return [] if found is None else [rdata.to_text() for rdata in found]


def entry(cache_dir: Path, zone_file: Path) -> Path:
    return ZoneCache(cache_dir).entry(EXAMPLE, zone_file)


def test_a_start_with_unchanged_files_takes_the_saved_compile(
    zone_file: Path, cache_dir: Path, compiles: list[Path]
) -> None:
    first = load(zone_file, cache_dir)
    assert compiles == [zone_file]
    assert entry(cache_dir, zone_file).is_file()
    second = load(zone_file, cache_dir)
    assert compiles == [zone_file]
    [before], [after] = first, second
    assert after is not before
    assert after.zone.to_marshal() == before.zone.to_marshal()
    assert (after.serial, after.records, after.sources) == (7, 4, before.sources)


def test_without_a_cache_dir_nothing_is_saved(
    zone_file: Path, cache_dir: Path, compiles: list[Path]
) -> None:
    load(zone_file, None)
    load(zone_file, None)
    assert compiles == [zone_file, zone_file]
    assert list(cache_dir.iterdir()) == []


@pytest.mark.parametrize("changed", ["example.com.zone", "hosts.inc"])
def test_a_changed_file_is_compiled_again_and_its_entry_replaced(
    zone_file: Path, cache_dir: Path, compiles: list[Path], changed: str
) -> None:
    load(zone_file, cache_dir)
    path = zone_file.parent / changed
    path.write_text(path.read_text().replace("192.0.2.80", "192.0.2.81").replace(" 7 ", " 8 "))
    reloaded = load(zone_file, cache_dir)
    assert compiles == [zone_file, zone_file]
    assert [hosted.serial for hosted in reloaded] == [8 if changed.endswith("zone") else 7]
    assert address(reloaded, "www.example.com.") == [
        "192.0.2.80" if changed.endswith("zone") else "192.0.2.81"
    ]
    assert len(list(cache_dir.iterdir())) == 1
    load(zone_file, cache_dir)
    assert len(compiles) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]),  # a flipped bit
        lambda raw: raw[: len(raw) // 2],  # truncated
        lambda raw: b"garbage",
        lambda raw: zonecache.FORMAT + b"\0" * 32,
    ],
    ids=["bit flip", "truncated", "garbage", "empty payload"],
)
def test_a_damaged_entry_is_ignored_with_a_log_line_and_replaced(
    zone_file: Path,
    cache_dir: Path,
    compiles: list[Path],
    caplog: pytest.LogCaptureFixture,
    damage: object,
) -> None:
    load(zone_file, cache_dir)
    saved = entry(cache_dir, zone_file)
    saved.write_bytes(damage(saved.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.INFO, logger="nameserver.zonecache"):
        assert address(load(zone_file, cache_dir), "www.example.com.") == ["192.0.2.80"]
    assert len(compiles) == 2
    assert str(saved) in caplog.text
    load(zone_file, cache_dir)
    assert len(compiles) == 2


def test_an_entry_of_another_format_version_is_replaced(
    zone_file: Path, cache_dir: Path, compiles: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older:
        older.setattr(zonecache, "FORMAT", b"nameserverd-zone 0\n")
        load(zone_file, cache_dir)
    load(zone_file, cache_dir)
    load(zone_file, cache_dir)
    assert len(compiles) == 2


def test_a_cache_dir_that_cannot_be_written_is_only_logged(
    zone_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with caplog.at_level(logging.WARNING, logger="nameserver.zonecache"):
        assert address(load(zone_file, not_a_folder), "www.example.com.") == ["192.0.2.80"]
    assert "cannot save the compiled zone example.com." in caplog.text


def test_zones_dnspython_reads_are_saved_too(
    tmp_path: Path, cache_dir: Path, compiles: list[Path]
) -> None:
    """$GENERATE is beyond the fast reader; the compile and its includes are keyed all the same."""
    (tmp_path / "gen.inc").write_text("$GENERATE 1-3 host$ A 192.0.2.$\n")
    zone_file = tmp_path / "gen.zone"
    zone_file.write_text(APEX + "$INCLUDE gen.inc\n")
    assert address(load(zone_file, cache_dir), "host2.example.com.") == ["192.0.2.2"]
    [hosted] = load(zone_file, cache_dir)
    assert len(compiles) == 1
    assert [path for path, _ in hosted.sources] == [str(zone_file), str(tmp_path / "gen.inc")]
    (tmp_path / "gen.inc").write_text("$GENERATE 1-3 host$ A 192.0.2.1$\n")
    assert address(load(zone_file, cache_dir), "host2.example.com.") == ["192.0.2.12"]


def test_a_broken_zone_is_not_saved(tmp_path: Path, cache_dir: Path) -> None:
    zone_file = tmp_path / "broken.zone"
    zone_file.write_text(APEX + "www A 192.0.2\n")
    with pytest.raises(ZoneError):
        load(zone_file, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_a_reload_keeps_a_zone_whose_files_are_unchanged(
    zone_file: Path, compiles: list[Path]
) -> None:
    serving = load(zone_file, None)
    reloaded = load(zone_file, None, previous=serving)
    assert list(reloaded) == list(serving)  # the same HostedZone objects
    assert compiles == [zone_file]


@pytest.mark.parametrize("changed", ["example.com.zone", "hosts.inc"])
def test_a_reload_compiles_a_zone_whose_files_changed(
    zone_file: Path, compiles: list[Path], changed: str
) -> None:
    serving = load(zone_file, None)
    with (zone_file.parent / changed).open("a") as edited:
        edited.write("added A 192.0.2.9\n")
    reloaded = load(zone_file, None, previous=serving)
    assert address(reloaded, "added.example.com.") == ["192.0.2.9"]
    assert [hosted.sources for hosted in reloaded] != [hosted.sources for hosted in serving]
    assert compiles == [zone_file, zone_file]


def test_a_reload_does_not_keep_a_zone_moved_to_another_file(
    zone_file: Path, tmp_path: Path, compiles: list[Path]
) -> None:
    serving = load(zone_file, None)
    moved = tmp_path / "moved.zone"
    moved.write_bytes(zone_file.read_bytes())
    reloaded = load(moved, None, previous=serving)
    assert [hosted.file for hosted in reloaded] == [moved]
    assert len(compiles) == 2
