"""Assertions on Replies, each naming the client and showing what it received."""

from __future__ import annotations

from .clients import Reply, Target
from .daemon import Daemon


def _show(reply: Reply) -> str:
    """The reply as its client rendered it, for the failure message."""
    return f"[{reply.client} over {reply.transport} from {reply.server}]\n{reply.text}"


def assert_from(reply: Reply, target: Target, transport: str = "UDP") -> None:
    """The reply came from the queried address, over the transport asked for."""
    assert reply.server == target.host, f"reply not from {target.host}:\n{_show(reply)}"
    assert reply.transport == transport, f"expected a {transport} reply:\n{_show(reply)}"


def assert_rcode(reply: Reply, rcode: str, *, aa: bool) -> None:
    """Status and authority: ``aa`` says whether the AA flag must be set (or must not be)."""
    assert reply.rcode == rcode, f"expected {rcode}:\n{_show(reply)}"
    assert ("aa" in reply.flags) is aa, f"expected AA={int(aa)}:\n{_show(reply)}"


def assert_answer(reply: Reply, owner: str, rdtype: str, expected: set[str]) -> None:
    """The answer section holds exactly ``expected`` for ``owner``/``rdtype``."""
    got = reply.rdatas("answer", owner, rdtype)
    assert got == expected, f"{owner} {rdtype}: expected {sorted(expected)}:\n{_show(reply)}"


def assert_authoritative(
    reply: Reply,
    target: Target,
    owner: str,
    rdtype: str,
    expected: set[str],
    transport: str = "UDP",
) -> None:
    """The whole point of nameserverd: AA, the expected rdata, from the address asked."""
    assert_from(reply, target, transport)
    assert_rcode(reply, "NOERROR", aa=True)
    assert "tc" not in reply.flags, f"unexpected truncation:\n{_show(reply)}"
    assert_answer(reply, owner, rdtype, expected)


def assert_alive(daemon: Daemon) -> None:
    """The daemon process is still running (it must survive anything a client sends)."""
    assert daemon.alive(), daemon.describe()


def assert_no_traceback(daemon: Daemon, since: int = 0) -> None:
    """No traceback in the daemon's log after offset ``since``: bad input is handled, not caught.

    A top-level ``except Exception`` that logs and carries on keeps the daemon alive but hides
    a bug; client input, however broken, is an expected case with a planned answer.
    """
    assert "Traceback" not in daemon.log()[since:], daemon.describe()
