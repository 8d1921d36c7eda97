"""Fixtures of the conformance suite: Knot DNS and nameserverd, once per session.

Both serve the zones under ``zones/`` on loopback ports of their own. Without ``knotd`` the
whole suite skips and says why (CI installs it in ``.ci/run``).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from integration.daemon import Daemon, DaemonError

from .accepted import ACCEPTED_LOG
from .servers import (
    Knot,
    PortTaken,
    knotd_path,
    nameserverd_config,
    start_knot,
    start_nameserverd,
)

_HERE = Path(__file__).parent
_START_ATTEMPTS = 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything collected here ``conformance`` (``-m "not conformance"`` skips it)."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.conformance)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: nameserverd compared with Knot DNS")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many cases each accepted-difference rule excused, so none hides in a pass."""
    cases_by_rule: dict[str, set[str]] = {}
    for case_id, rule in ACCEPTED_LOG:
        cases_by_rule.setdefault(rule, set()).add(case_id)
    if not cases_by_rule:
        return
    terminalreporter.section("conformance: accepted differences (accepted.py)")
    for rule, cases in sorted(cases_by_rule.items()):
        terminalreporter.write_line(f"{rule}: {len(cases)} case(s)")
        if terminalreporter.verbosity > 0:
            for case_id in sorted(cases):
                terminalreporter.write_line(f"    {case_id}")


@dataclass
class Servers:
    """The reference and the server under test, each on its own port."""

    knot: Knot
    ours: Daemon


_PORTS = range(20000, 32768)
"""Below Linux's ephemeral range (32768-60999), so no client socket of this very suite (our
TCP connections) can be sitting on the port a server is about to bind."""


def _port_is_free(port: int) -> bool:
    """Whether UDP and TCP can both bind ``port`` on ``::`` dual-stack (so on 127.0.0.1 and
    ::1 too). Only a snapshot: the servers bind it a moment later, and a start that finds it
    taken is retried on another port."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET6, kind) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                probe.bind(("::", port))
            except OSError:
                return False
    return True


def _free_ports(count: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.choice(_PORTS)
        if port not in taken and port not in ports and _port_is_free(port):
            ports.append(port)
    return ports


def _start_knot(workdir: Path, profile: str) -> Knot:
    """knotd on a free port, trying another port when the one chosen was taken meanwhile."""
    tried: set[int] = set()
    for attempt in range(_START_ATTEMPTS):
        (port,) = _free_ports(1, tried)
        tried.add(port)
        try:
            return start_knot(workdir / f"knot-{attempt}", port, profile)
        except PortTaken:
            continue
    pytest.fail(f"knotd found its port taken {_START_ATTEMPTS} times: {sorted(tried)}")


def _pair(profile: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Knot and nameserverd for one profile; nameserverd's stop must be clean (exit 0)."""
    if knotd_path() is None:
        pytest.skip("knotd is not installed: apt-get install knot (.ci/run does)")
    workdir = tmp_path_factory.mktemp(f"conformance-{profile}")
    knot = _start_knot(workdir, profile)
    try:
        (ours_port,) = _free_ports(1, {knot.port})
        config = nameserverd_config(workdir / "nameserverd", ours_port, profile)
        try:
            ours = start_nameserverd(config, workdir / "nameserverd", ours_port)
        except DaemonError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield Servers(knot, ours)
        finally:
            ours.stop()
    finally:
        knot.stop()


@pytest.fixture(scope="session")
def hidden_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The pair most cases use: no identity, version or NSID configured on either."""
    yield from _pair("hidden", tmp_path_factory)


@pytest.fixture(scope="session")
def identity_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A second pair, both told the same identity, version and NSID (CH TXT and NSID cases)."""
    yield from _pair("identity", tmp_path_factory)


def alive(servers: Servers) -> Servers:
    """The servers, checked alive first: a crash is blamed on the case that caused it."""
    if not servers.ours.alive():
        pytest.fail(f"nameserverd died earlier:\n{servers.ours.describe()}", pytrace=False)
    if not servers.knot.alive():
        pytest.fail(f"knotd died earlier:\n{servers.knot.log()[-4000:]}", pytrace=False)
    return servers
