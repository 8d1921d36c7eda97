"""``server.udp_batch``: every other integration test runs the default, the batched
recvmmsg/sendmmsg loop; this one keeps the portable one-datagram loop covered end to end.

Which loop serves is read from the worker's debug log, written when it sets up its sockets,
so before it answers anything: once an answer has arrived, the line is in the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from . import netns
from .checks import assert_authoritative
from .clients import CLIENTS, Client, Target
from .daemon import MODES, Daemon, running_daemon, write_config
from .zonedata import WWW, WWW_A, WWW_AAAA

PORT = 5304


def start(topology: netns.Topology, mode: str, folder: Path, **server: object) -> Iterator[Daemon]:
    config = write_config(folder / "nameserverd.yaml", port=PORT, ipv6_only=MODES[mode], **server)
    document = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**document, "log": {"level": "debug"}}, sort_keys=False))
    with running_daemon(topology.server, config, folder, PORT) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def one_datagram(
    topology: netns.Topology, mode: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    yield from start(topology, mode, tmp_path_factory.mktemp(f"batch1-{mode}"), udp_batch=1)


@pytest.mark.parametrize(
    ("address", "source", "rdtype", "expected"),
    [
        pytest.param(netns.V4_ALIASES[0], netns.V4_PRIMARY, "A", WWW_A, id="v4-alias"),
        pytest.param(netns.V6_SECOND, netns.V6_FIRST, "AAAA", WWW_AAAA, id="v6-second"),
    ],
)
def test_udp_batch_1_answers_a_secondary_address_from_itself(
    topology: netns.Topology,
    one_datagram: Daemon,
    client: Client,
    address: str,
    source: str,
    rdtype: str,
    expected: set[str],
) -> None:
    target = Target(topology.server, address, PORT, source)
    assert_authoritative(client.ask(target, WWW, rdtype), target, WWW, rdtype, expected)


def test_udp_batch_1_serves_one_datagram_per_system_call(
    topology: netns.Topology, one_datagram: Daemon
) -> None:
    target = Target(topology.server, netns.V4_ALIASES[0], PORT, netns.V4_PRIMARY)
    CLIENTS["dnspython"].ask(target, WWW, "A")
    log = one_datagram.log()
    assert "one datagram per recvmsg/sendmsg" in log, one_datagram.describe()
    assert "recvmmsg" not in log, one_datagram.describe()
