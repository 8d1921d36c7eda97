"""Fixtures of the integration suite: namespaces, the daemon per listening mode, the two clients.

The whole matrix runs once per mode. Namespaces and the daemon are session-scoped and
parametrised by mode, so pytest runs every test of one mode against one daemon, tears both down,
and starts clean for the next mode (two daemon starts in all, plus a few test-specific ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import netns
from .clients import CLIENTS, Client, DigClient, Target
from .daemon import MODES, Daemon, start_for_mode

PORT = 5300

_TAGS = {"dual-stack": "ds", "ipv6-only": "v6o"}

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything collected here ``integration`` (``-m "not integration"`` skips it)."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker so that ``--strict-markers`` runs stay clean."""
    config.addinivalue_line("markers", "integration: needs root, ip netns and the daemon")


@pytest.fixture(scope="session")
def netns_privileges() -> None:
    """Skip, saying why, where namespaces cannot be made (not root, no ``ip``)."""
    if (reason := netns.privileges_problem()) is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    """The listening mode of the current daemon: "dual-stack" or "ipv6-only"."""
    return request.param


@pytest.fixture(scope="session")
def topology(mode: str, netns_privileges: None) -> Iterator[netns.Topology]:
    """Fresh server and client namespaces for one mode (see netns.py for the layout)."""
    with netns.topology(_TAGS[mode]) as topo:
        yield topo


@pytest.fixture(scope="session")
def session_daemon(
    topology: netns.Topology, mode: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    """The daemon shared by all tests of a mode; stopping it checks SIGTERM -> exit 0."""
    daemon = start_for_mode(topology, mode, tmp_path_factory.mktemp(f"nsd-{mode}"), PORT)
    yield daemon
    daemon.stop()


@pytest.fixture
def daemon(session_daemon: Daemon) -> Daemon:
    """The shared daemon, checked alive first: a crash is blamed on the test that caused it."""
    if not session_daemon.alive():
        pytest.fail(f"the shared daemon died earlier:\n{session_daemon.describe()}", pytrace=False)
    return session_daemon


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> Client:
    """Each case runs once with dig and once with dnspython."""
    if request.param == "dig" and not DigClient.available():
        pytest.skip("dig is not installed (apt install bind9-dnsutils)")
    return CLIENTS[request.param]


@pytest.fixture
def on_server(topology: netns.Topology, daemon: Daemon) -> Callable[..., Target]:
    """Make a Target for an address of the server namespace, asked from inside it."""

    def make(address: str, source: str | None = None) -> Target:
        return Target(topology.server, address, daemon.port, source)

    return make


@pytest.fixture
def link_local(topology: netns.Topology, daemon: Daemon) -> Target:
    """The server's link-local address, asked from the client namespace over the veth."""
    return Target(topology.client, f"{netns.LL_SERVER}%{netns.CLIENT_IF}", daemon.port)
