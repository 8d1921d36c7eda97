"""Network namespaces, links and addresses that the integration tests build for themselves.

The point of nameserverd is *which source address its replies carry*, and that can only be
observed on addresses the kernel treats as local. The tests therefore never touch the host's
own network: every address lives in a namespace made here (unique per pytest process) and every
packet goes to loopback or to a veth between two such namespaces.

The server namespace looks like this (``nodad`` everywhere, so addresses are usable at once)::

    lo     127.0.0.1/32, 127.0.0.53/32, 127.0.1.1/32, ::1, fd53::1/64, fd53::2/64
    veths  fe80::53/64, fe80::2/64   <-- veth -->   vethc  fe80::1/64  (client namespace)

``lo`` keeps 127.0.0.1 only as a /32 (the kernel's default /8 makes *every* 127.x address local),
so an IPv4 alias is reachable exactly while it is configured: added-later and removed-while-
running addresses then mean something. ``fe80::2`` is a decoy: for a reply to ``fe80::1`` it is
the source the kernel would pick by itself, so a server that does not set the source from the
query's destination answers a query to ``fe80::53`` from the wrong address, and the client
rejects it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

SERVER_IF = "veths"
CLIENT_IF = "vethc"

V4_PRIMARY = "127.0.0.1"
V4_ALIASES = ("127.0.0.53", "127.0.1.1")
V6_LOOPBACK = "::1"
V6_FIRST = "fd53::1"
V6_SECOND = "fd53::2"
LL_SERVER = "fe80::53"
LL_DECOY = "fe80::2"
LL_CLIENT = "fe80::1"

_libc = ctypes.CDLL(None, use_errno=True)


class CommandError(RuntimeError):
    """An ``ip`` command failed; the message carries its stderr so the cause is visible."""


def privileges_problem() -> str | None:
    """Say why namespace tests cannot run here, or None when they can (root and ``ip`` present)."""
    if os.geteuid() != 0:
        return "integration tests need root to create network namespaces (euid != 0)"
    if shutil.which("ip") is None:
        return "integration tests need iproute2's `ip` command, which is not on PATH"
    return None


def ip(*args: str) -> str:
    """Run one ``ip`` command and return its stdout; raise CommandError with stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise CommandError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def netns_argv(netns: str, argv: list[str]) -> list[str]:
    """Prefix a command line so that it runs inside ``netns`` (``ip netns exec`` execs in place)."""
    return ["ip", "netns", "exec", netns, *argv]


def _family_options(cidr: str) -> list[str]:
    """IPv6 addresses get ``nodad``: without it they stay tentative and cannot be used at once."""
    return ["nodad"] if ":" in cidr else []


def add_address(netns: str, cidr: str, dev: str = "lo") -> None:
    """Configure ``cidr`` on ``dev`` inside ``netns``, usable immediately."""
    ip("-n", netns, "addr", "add", cidr, "dev", dev, *_family_options(cidr))


def delete_address(netns: str, cidr: str, dev: str = "lo") -> None:
    """Remove ``cidr`` from ``dev`` inside ``netns``."""
    ip("-n", netns, "addr", "del", cidr, "dev", dev)


def has_address(netns: str, address: str) -> bool:
    """Whether ``address`` is configured anywhere in ``netns`` (used to clean up only once)."""
    shown = ip("-n", netns, "-o", "addr", "show")
    return any(f" {address}/" in line for line in shown.splitlines())


@contextlib.contextmanager
def temporary_address(netns: str, cidr: str, dev: str = "lo") -> Iterator[str]:
    """Add an address for the duration of a ``with`` block; remove it afterwards if still there.

    Yields the bare address. A test may delete it itself (address-removal case); cleanup then
    does nothing, so the namespace is the same for the next test either way.
    """
    add_address(netns, cidr, dev)
    address = cidr.split("/")[0]
    try:
        yield address
    finally:
        if has_address(netns, address):
            delete_address(netns, cidr, dev)


def run_in_netns(netns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a fresh thread that joined ``netns``; return its result.

    ``setns(2)`` switches only the calling thread, so the test process itself stays in its own
    namespace and sockets made by ``fn`` belong to ``netns`` (they keep working from any thread
    afterwards). Exceptions raised by ``fn`` are re-raised here.
    """
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["result"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@dataclass(frozen=True)
class Topology:
    """Names of the two namespaces of one test run (see the module docstring for the layout)."""

    server: str
    client: str


def _build(topo: Topology) -> None:
    """Create the namespaces, the veth pair and every address of the layout."""
    for netns in (topo.server, topo.client):
        ip("netns", "add", netns)
        ip("-n", netns, "link", "set", "lo", "up")
    # Make 127.0.0.1 a /32 so that only configured 127.x aliases are local (module docstring).
    delete_address(topo.server, f"{V4_PRIMARY}/8")
    add_address(topo.server, f"{V4_PRIMARY}/32")
    for alias in V4_ALIASES:
        add_address(topo.server, f"{alias}/32")
    for address in (V6_FIRST, V6_SECOND):
        add_address(topo.server, f"{address}/64")
    ip(
        "-n", topo.server, "link", "add", SERVER_IF, "type", "veth",
        "peer", "name", CLIENT_IF, "netns", topo.client,
    )  # fmt: skip
    # No automatic link-local address: only ours exist, and none waits for DAD.
    ip("-n", topo.server, "link", "set", SERVER_IF, "addrgenmode", "none")
    ip("-n", topo.client, "link", "set", CLIENT_IF, "addrgenmode", "none")
    add_address(topo.server, f"{LL_SERVER}/64", SERVER_IF)
    add_address(topo.server, f"{LL_DECOY}/64", SERVER_IF)  # added last: the kernel's favourite
    add_address(topo.client, f"{LL_CLIENT}/64", CLIENT_IF)
    ip("-n", topo.server, "link", "set", SERVER_IF, "up")
    ip("-n", topo.client, "link", "set", CLIENT_IF, "up")


def destroy(topo: Topology) -> None:
    """Delete both namespaces (the veth pair goes with them); tolerate half-built topologies."""
    for netns in (topo.server, topo.client):
        if (NETNS_DIR / netns).exists():
            ip("netns", "del", netns)


@contextlib.contextmanager
def topology(tag: str) -> Iterator[Topology]:
    """Build a fresh server/client namespace pair named after this process and ``tag``.

    The names carry the pid so that parallel or leftover runs never collide; the namespaces are
    deleted on the way out even if building them failed half way.
    """
    topo = Topology(server=f"nsd-{os.getpid()}-{tag}-srv", client=f"nsd-{os.getpid()}-{tag}-cli")
    try:
        _build(topo)
        yield topo
    finally:
        destroy(topo)
