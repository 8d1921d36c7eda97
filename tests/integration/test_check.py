"""Case 9: ``nameserverd --config PATH --check`` validates without serving (no root needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .daemon import EXAMPLE_ZONE, run_check, write_config

ZONE_FILE = "example.com.zone"


def config_with_zone(tmp_path: Path, zone_text: str | None = None) -> Path:
    """A config next to a copy of the test zone (or ``zone_text``), named by a relative path."""
    zone = tmp_path / ZONE_FILE
    if zone_text is None:
        shutil.copy(EXAMPLE_ZONE, zone)
    else:
        zone.write_text(zone_text)
    return write_config(
        tmp_path / "nameserverd.yaml",
        port=5300,
        ipv6_only=False,
        zones={"example.com.": Path(ZONE_FILE)},
    )


def test_good_config_passes_and_names_the_zone(tmp_path: Path) -> None:
    """Exit 0, and the output says which zone was checked."""
    done = run_check(config_with_zone(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "example.com" in output, f"--check did not print the zone:\n{output}"


BAD_ZONES = {
    "bad-rdata": EXAMPLE_ZONE.read_text() + "broken  IN A    not-an-address\n",
    "no-soa": "$ORIGIN example.com.\n$TTL 3600\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    "syntax": EXAMPLE_ZONE.read_text() + "www  IN  (  \n",
}


@pytest.mark.parametrize("name", list(BAD_ZONES))
def test_bad_zone_fails_and_names_the_file(tmp_path: Path, name: str) -> None:
    """Exit 1, and the message names the zone file so the operator knows where to look."""
    done = run_check(config_with_zone(tmp_path, BAD_ZONES[name]))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert ZONE_FILE in output, f"the zone file is not named:\n{output}"


def test_missing_zone_file_fails_and_names_it(tmp_path: Path) -> None:
    """A zone file that does not exist is an error naming it."""
    config = config_with_zone(tmp_path)
    (tmp_path / ZONE_FILE).unlink()
    done = run_check(config)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert ZONE_FILE in output, f"the zone file is not named:\n{output}"


VALID_ZONES = f"zones:\n  - name: example.com.\n    file: {EXAMPLE_ZONE}\n"
BAD_CONFIGS = {  # each has exactly one mistake, so the message must be about that one
    "yaml-syntax": "server: [listen: ::\n" + VALID_ZONES,
    "port-not-a-number": "server:\n  listen: ['::']\n  port: fifty\n" + VALID_ZONES,
    "unknown-key": "server:\n  listen: ['::']\n  port: 5300\n  lisen: ['::']\n" + VALID_ZONES,
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_fails_and_names_the_file(tmp_path: Path, name: str) -> None:
    """Exit 1, and the message names the config file."""
    config = tmp_path / "broken-config.yaml"
    config.write_text(BAD_CONFIGS[name])
    done = run_check(config)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert config.name in output, f"the config file is not named:\n{output}"
