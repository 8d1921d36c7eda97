"""server.cache_dir: where compiled zones are kept, relative to the configuration's folder, by
default the folder systemd's ``CacheDirectory=`` made, or none."""

from pathlib import Path

import pytest

from nameserver.config import ConfigError, load_config

ZONES = "zones:\n  - name: example.com.\n    file: example.com.zone\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    (tmp_path / "example.com.zone").write_text("; checked by zones.py, not here\n")
    return tmp_path


def config_file(folder: Path, server: str = "") -> Path:
    path = folder / "nameserverd.yaml"
    path.write_text(server + ZONES)
    return path


def test_no_cache_by_default(folder: Path) -> None:
    assert load_config(config_file(folder)).server.cache_dir is None


@pytest.mark.parametrize("server", ["", "server:\n  port: 5300\n"], ids=["no section", "section"])
def test_systemd_cache_directory_is_the_default(
    folder: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/nameserverd:/var/cache/other")
    config = load_config(config_file(folder, server))
    assert config.server.cache_dir == Path("/var/cache/nameserverd")


def test_relative_to_the_configuration_folder(folder: Path) -> None:
    (folder / "cache").mkdir()
    config = load_config(config_file(folder, "server:\n  cache_dir: cache\n"))
    assert config.server.cache_dir == folder / "cache"


def test_null_turns_the_environment_default_off(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", str(folder))
    config = load_config(config_file(folder, "server:\n  cache_dir: null\n"))
    assert config.server.cache_dir is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("absent", "folder {folder}/absent does not exist"),
        ("example.com.zone", "folder {folder}/example.com.zone does not exist"),
        ("5", "expected a folder name or null, got the integer 5"),
    ],
)
def test_mistakes_name_file_line_and_key(folder: Path, value: str, problem: str) -> None:
    path = config_file(folder, f"server:\n  port: 5300\n  cache_dir: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors == [f"{path}:3: server.cache_dir: {problem.format(folder=folder)}"]
