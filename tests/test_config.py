"""nameserver.config: the example loads, defaults apply, and every mistake is named precisely."""

import os
from pathlib import Path

import dns.name
import pytest

from nameserver.config import ConfigError, ServerSettings, ZoneSettings, load_config

REPO = Path(__file__).resolve().parent.parent

ZONES = """\
zones:
  - name: example.com.
    file: zones/example.com.zone
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config folder holding the zone file that ZONES names."""
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "example.com.zone").write_text("; checked by zones.py, not here\n")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "nameserverd.yaml"
    path.write_text(text)
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def test_example_config_loads_with_zone_path_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "config.example.yaml")
    assert config.path == REPO / "config.example.yaml"
    assert config.server == ServerSettings(listen=("::",), port=5300, ipv6_only=False)
    assert config.zones == (
        ZoneSettings(dns.name.from_text("example.com."), REPO / "zones" / "example.com.zone"),
    )
    assert config.zones[0].file.is_absolute()


def test_relative_config_path_is_made_absolute(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder, ZONES)
    monkeypatch.chdir(folder)
    config = load_config("nameserverd.yaml")
    assert config.path == folder / "nameserverd.yaml"
    assert config.zones[0].file == folder / "zones" / "example.com.zone"


@pytest.mark.parametrize("server", ["", "server:\n", "server: {}\n"])
def test_missing_or_empty_server_section_means_defaults(folder: Path, server: str) -> None:
    config = load_config(write(folder, server + ZONES))
    assert config.server == ServerSettings(listen=("::",), port=53, ipv6_only=False)


def test_server_settings_are_read_and_addresses_normalised(folder: Path) -> None:
    text = 'server:\n  listen: ["0.0.0.0", "2001:DB8:0::0001"]\n  port: 5353\n  ipv6_only: true\n'
    config = load_config(write(folder, text + ZONES))
    assert config.server == ServerSettings(
        listen=("0.0.0.0", "2001:db8::1"), port=5353, ipv6_only=True
    )


def test_zone_names_are_absolute(folder: Path) -> None:
    config = load_config(write(folder, ZONES.replace("name: example.com.", "name: example.com")))
    assert config.zones[0].name == dns.name.from_text("example.com.")
    assert config.zones[0].name.is_absolute()


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert errors(path) == [f"{path}: cannot read: No such file or directory"]


def test_yaml_syntax_error_names_its_line(folder: Path) -> None:
    path = write(folder, "server:\n  port: 53\n  listen: ::: 1\n" + ZONES)
    assert errors(path) == [f"{path}:3: mapping values are not allowed here"]


def test_top_level_must_be_a_mapping(folder: Path) -> None:
    path = write(folder, "- server\n- zones\n")
    assert errors(path) == [f"{path}:1: expected a mapping, got a list"]


def test_empty_file_lacks_zones(folder: Path) -> None:
    path = write(folder, "# nothing yet\n")
    assert errors(path) == [f"{path}:1: zones: required, but missing"]


@pytest.mark.parametrize(
    ("text", "line", "key", "allowed"),
    [
        ("verbose: true\n" + ZONES, 1, "verbose", "server, zones, log, metrics"),
        (
            "server:\n  threads: 4\n" + ZONES,
            2,
            "server.threads",
            "listen, port, ipv6_only, identity, version, nsid, workers, user, group, udp_batch, "
            "cache_dir",
        ),
        (ZONES + "    serial: 1\n", 4, "zones[0].serial", "name, file"),
    ],
)
def test_unknown_keys_are_named_with_the_allowed_ones(
    folder: Path, text: str, line: int, key: str, allowed: str
) -> None:
    path = write(folder, text)
    assert errors(path) == [f"{path}:{line}: {key}: unknown key; allowed: {allowed}"]


def test_key_given_twice(folder: Path) -> None:
    path = write(folder, "server:\n  port: 53\n  port: 54\n" + ZONES)
    assert errors(path) == [f"{path}:3: server.port: given twice (first at line 2)"]


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("port: true", "server.port: expected a port number, got the boolean true"),
        ('port: "53"', "server.port: expected a port number, got the string '53'"),
        ("port: 53.0", "server.port: expected a port number, got the number 53.0"),
        ("port: 0", "server.port: port 0 is outside 1..65535"),
        ("port: 65536", "server.port: port 65536 is outside 1..65535"),
        ('ipv6_only: "yes"', "server.ipv6_only: expected true or false, got the string 'yes'"),
        ("ipv6_only: 1", "server.ipv6_only: expected true or false, got the integer 1"),
        ('listen: "::"', "server.listen: expected a list, got the string '::'"),
        ("listen: []", "server.listen: expected at least one entry, got an empty list"),
        ("listen: [localhost]", "server.listen[0]: 'localhost' is not an IP address"),
        ("listen: [53]", "server.listen[0]: expected an IP address, got the integer 53"),
        ('listen: ["::", "::0"]', "server.listen[1]: :: is listed twice (first at line 2)"),
        ("workers: 0", "server.workers: 0 workers is outside 1..256"),
        (
            "workers: many",
            "server.workers: expected auto or a number of workers, got the string 'many'",
        ),
        ("user: no-such-user-here", "server.user: no user 'no-such-user-here' on this system"),
        ("group: no-such-group-here", "server.group: no group 'no-such-group-here' on this system"),
        ("udp_batch: 0", "server.udp_batch: 0 datagrams per batch is outside 1..1024"),
        ("udp_batch: 1025", "server.udp_batch: 1025 datagrams per batch is outside 1..1024"),
        (
            "udp_batch: lots",
            "server.udp_batch: expected a number of datagrams, got the string 'lots'",
        ),
    ],
)
def test_bad_server_setting(folder: Path, setting: str, problem: str) -> None:
    path = write(folder, f"server:\n  {setting}\n" + ZONES)
    assert errors(path) == [f"{path}:2: {problem}"]


@pytest.mark.parametrize(
    ("zone", "problem"),
    [
        ("- file: zones/example.com.zone", "zones[0].name: required, but missing"),
        ("- name: example.com.", "zones[0].file: required, but missing"),
        ("- example.com.", "zones[0]: expected a mapping, got the string 'example.com.'"),
        (
            "- {name: example..com., file: zones/example.com.zone}",
            "zones[0].name: 'example..com.' is not a domain name: A DNS label is empty.",
        ),
        (
            "- {name: " + "a" * 64 + ".com., file: zones/example.com.zone}",
            f"zones[0].name: '{'a' * 64}.com.' is not a domain name: "
            "A DNS label is > 63 octets long.",
        ),
    ],
)
def test_bad_zone_entry(folder: Path, zone: str, problem: str) -> None:
    path = write(folder, f"zones:\n  {zone}\n")
    assert errors(path) == [f"{path}:2: {problem}"]


def test_missing_zone_file_is_named_by_its_resolved_path(folder: Path) -> None:
    path = write(folder, "zones:\n  - name: example.org.\n    file: zones/../example.org.zone\n")
    resolved = folder / "zones" / ".." / "example.org.zone"
    assert errors(path) == [
        f"{path}:3: zones[0].file: zone file {resolved} does not exist or is not a file"
    ]


def test_zone_listed_twice_names_both_lines(folder: Path) -> None:
    path = write(folder, ZONES + "  - name: EXAMPLE.com\n    file: zones/example.com.zone\n")
    assert errors(path) == [f"{path}:4: zones[1]: EXAMPLE.com. is listed twice (first at line 2)"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("server:\n  port: 53\n", "1: zones: required, but missing"),
        ("zones: []\n", "1: zones: expected at least one entry, got an empty list"),
        ("zones:\n", "1: zones: expected a list, got nothing (null)"),
    ],
)
def test_an_authoritative_server_needs_zones(folder: Path, text: str, problem: str) -> None:
    path = write(folder, text)
    assert errors(path) == [f"{path}:{problem}"]


def test_every_problem_is_reported_in_line_order(folder: Path) -> None:
    path = write(
        folder,
        """\
server:
  listen: ["::", 192.0.2.300]
  port: true
  colour: blue
zones:
  - name: example.com.
    file: nowhere.zone
  - file: zones/example.com.zone
""",
    )
    assert errors(path) == [
        f"{path}:2: server.listen[1]: '192.0.2.300' is not an IP address",
        f"{path}:3: server.port: expected a port number, got the boolean true",
        f"{path}:4: server.colour: unknown key; allowed: "
        "listen, port, ipv6_only, identity, version, nsid, workers, user, group, udp_batch, "
        "cache_dir",
        f"{path}:7: zones[0].file: zone file {folder}/nowhere.zone does not exist or is not a file",
        f"{path}:8: zones[1].name: required, but missing",
    ]


def test_workers_auto_is_one_per_usable_cpu(folder: Path) -> None:
    config = load_config(write(folder, "server:\n  workers: auto\n" + ZONES))
    assert config.server.workers == len(os.sched_getaffinity(0))


def test_udp_batch_is_read_and_defaults_to_64(folder: Path) -> None:
    assert load_config(write(folder, ZONES)).server.udp_batch == 64
    config = load_config(write(folder, "server:\n  udp_batch: 1\n" + ZONES))
    assert config.server.udp_batch == 1
