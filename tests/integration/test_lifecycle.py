"""The daemon as a service: the sockets its mode promises, READY, SIGTERM -> 0, early failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from . import netns
from .checks import assert_authoritative
from .clients import CLIENTS, DigClient, QueryFailed, Target
from .daemon import EXAMPLE_ZONE, MODES, Daemon, DaemonError, running_daemon, write_config
from .netns import netns_argv
from .zonedata import WWW, WWW_A

PORT = 5302

EXPECTED_SOCKETS = {
    # ss prints a dual-stack (V6ONLY=0) "::" socket as "*", a V6ONLY one as "[::]".
    "dual-stack": {"*"},
    "ipv6-only": {"[::]", "0.0.0.0"},
}


def listening(netns_name: str, port: int, protocol: str) -> set[str]:
    """The local addresses of listening sockets on ``port`` ("u" = UDP, "t" = TCP)."""
    done = subprocess.run(
        netns_argv(netns_name, ["ss", f"-Hln{protocol}", f"sport = :{port}"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return {line.split()[3].rsplit(":", 1)[0] for line in done.stdout.splitlines() if line}


@pytest.mark.parametrize("protocol", [pytest.param("u", id="udp"), pytest.param("t", id="tcp")])
def test_sockets_match_the_mode(daemon: Daemon, mode: str, protocol: str) -> None:
    """Dual-stack: one "::" socket with V6ONLY off. ipv6_only: "::" with V6ONLY on + 0.0.0.0."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    assert listening(daemon.netns, daemon.port, protocol) == EXPECTED_SOCKETS[mode]


def test_sigterm_exits_zero(topology: netns.Topology, mode: str, tmp_path: Path) -> None:
    """A fresh daemon answers, then SIGTERM ends it with status 0 and no process left."""
    config = write_config(tmp_path / "nameserverd.yaml", port=PORT, ipv6_only=MODES[mode])
    clients = [CLIENTS["dnspython"]] + ([CLIENTS["dig"]] if DigClient.available() else [])
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        target = Target(topology.server, netns.V4_ALIASES[0], PORT, netns.V4_PRIMARY)
        for client in clients:
            assert_authoritative(client.ask(target, WWW, "A"), target, WWW, "A", WWW_A)
        daemon.stop()  # raises DaemonError unless: exit 0, in time, nothing left behind
    assert daemon.proc.returncode == 0


def test_sigterm_exits_zero_when_the_notify_listener_is_gone(
    topology: netns.Topology, mode: str, tmp_path: Path
) -> None:
    """sd_notify is best effort: a supervisor that went away must not turn a stop into exit 1."""
    config = write_config(tmp_path / "nameserverd.yaml", port=PORT, ipv6_only=MODES[mode])
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        daemon.notify.close()  # later notifications (STOPPING=1) now get ECONNREFUSED
        daemon.stop()  # raises DaemonError unless it exits 0
    assert daemon.proc.returncode == 0


def test_broken_zone_exits_before_ready_naming_the_file(
    topology: netns.Topology, mode: str, tmp_path: Path
) -> None:
    """A zone that does not load: the daemon exits (never READY) and its log names the file."""
    zone = tmp_path / "broken.zone"
    zone.write_text(EXAMPLE_ZONE.read_text() + "broken  IN A    not-an-address\n")
    config = write_config(
        tmp_path / "nameserverd.yaml",
        port=PORT,
        ipv6_only=MODES[mode],
        zones={"example.com.": zone},
    )
    with (
        pytest.raises(DaemonError, match="before READY") as failure,
        running_daemon(topology.server, config, tmp_path, PORT),
    ):
        pass
    assert zone.name in str(failure.value), str(failure.value)


def test_specific_listen_addresses_answer_there_only(
    topology: netns.Topology, mode: str, tmp_path: Path
) -> None:
    """Non-wildcard listeners: each listed address answers (UDP and TCP), an unlisted one not."""
    listen = (netns.V4_ALIASES[0], netns.V6_SECOND)
    config = write_config(
        tmp_path / "nameserverd.yaml", port=PORT, ipv6_only=MODES[mode], listen=listen
    )
    client = CLIENTS["dnspython"]
    with running_daemon(topology.server, config, tmp_path, PORT):
        for address, source in zip(listen, (netns.V4_PRIMARY, netns.V6_FIRST), strict=True):
            target = Target(topology.server, address, PORT, source)
            for tcp in (False, True):
                reply = client.ask(target, WWW, "A", tcp=tcp)
                assert_authoritative(reply, target, WWW, "A", WWW_A, "TCP" if tcp else "UDP")
        unlisted = Target(topology.server, netns.V4_PRIMARY, PORT, netns.V4_PRIMARY)
        with pytest.raises(QueryFailed):
            client.ask(unlisted, WWW, "A", timeout=1.0)
