"""Fuzz a running nameserverd over loopback with the packets of ``tests/test_fuzz.py``, at volume.

The fuzz test proves the properties on the pure responder; this proves them through the
sockets, where a reply can also come from the wrong address, go missing, or arrive twice, and
where the daemon must survive stalled and cut TCP streams. Run from the repository root::

    .venv/bin/python -m bench.fuzz_daemon [--packets N] [--seconds S] [--seed X] [--port P]

Without ``--port`` it starts the installed ``nameserverd`` (listening on 127.0.0.1 and ::1 only)
with the fuzz zones, the way ``tests/integration/daemon.py`` does: readiness is its READY=1 on
NOTIFY_SOCKET. With ``--port`` it fuzzes a daemon already listening there on both addresses.
Packets only ever go to 127.0.0.1 and ::1. Exit status 1 when any property broke.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query

from nameserver.net.tcp import frame
from nameserver.responder import Transport
from nameserver.zones import load_zones
from tests.integration.daemon import (
    READY_TIMEOUT,
    Daemon,
    DaemonError,
    NotifyEndpoint,
    daemon_executable,
    write_config,
)
from tests.support import free_port
from tests.test_fuzz import (
    SEED,
    Broken,
    PacketGenerator,
    Verdict,
    check_reply,
    silence_owed,
    write_fuzz_zones,
    zone_names,
)

TARGETS = ("127.0.0.1", "::1")
BATCH = 5_000  # packets between two liveness checks
WINDOW = 32  # UDP queries in flight per target address, each on a socket of its own
REPLY_TIMEOUT = 2.0  # seconds; the daemon answers loopback queries in milliseconds
TCP_SHARE = 0.05  # of the packets go over TCP, pipelined
TCP_PIPELINE = 50  # packets per TCP connection
STALLED_MAX = 16  # TCP connections left hanging mid-message at any time
PROBE = dns.message.make_query("www.example.com.", "A")
INTERNAL_ERROR = "internal error answering"  # what the daemon logs when the responder raises
SHOWN_EXAMPLES = 5


@dataclass
class Tally:
    """Everything counted during a run; a violation is any nonzero count of a broken property."""

    sent: Counter[Transport] = field(default_factory=Counter)
    replies: int = 0
    broken: Counter[Broken] = field(default_factory=Counter)
    wrong_source: int = 0
    probes: int = 0
    probe_failures: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def record(self, transport: Transport, wire: bytes, verdict: Verdict) -> None:
        """Count a broken property; keep the first few with their packets for the report."""
        if verdict.broken is None:
            return
        self.broken[verdict.broken] += 1
        if len(self.examples) < SHOWN_EXAMPLES:
            detail = f"\n  {verdict.detail.strip()}" if verdict.detail else ""
            self.examples.append(
                f"{verdict.broken.value} over {transport.name}\n  packet hex: {wire.hex()}{detail}"
            )


@dataclass
class Pending:
    """A UDP query owed a reply, and when to stop waiting for it."""

    wire: bytes
    target: str
    deadline: float


class UdpFuzzer:
    """Sends datagrams so that every reply is matched to the one packet that could cause it.

    A packet owed a reply goes out on an idle socket of its own (WINDOW per target) and the
    socket is busy until the reply or REPLY_TIMEOUT. A packet owed silence goes out on a socket
    that carries only such packets (one per target and kind), so any datagram arriving there
    is a violation. Sockets are unconnected, so a reply from another address is seen, not
    filtered out by the kernel.
    """

    def __init__(self, port: int, tally: Tally) -> None:
        self.port = port
        self.tally = tally
        self.selector = selectors.DefaultSelector()
        self.idle: dict[str, list[socket.socket]] = {target: [] for target in TARGETS}
        self.pending: dict[socket.socket, Pending] = {}
        self.silent: dict[tuple[str, Broken], socket.socket] = {}
        self.silent_sent: dict[bytes, bytes] = {}  # ID -> the latest silent packet with it
        for target in TARGETS:
            for _ in range(WINDOW):
                self.idle[target].append(self._open(target, None))
            for kind in (Broken.SHORT_ANSWERED, Broken.QR_ANSWERED):
                self.silent[target, kind] = self._open(target, kind)

    def _open(self, target: str, silent_kind: Broken | None) -> socket.socket:
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, (target, silent_kind))
        return sock

    def send(self, target: str, wire: bytes) -> None:
        self.tally.sent[Transport.UDP] += 1
        kind = silence_owed(wire)
        if kind is not None:
            self.silent_sent[wire[:2]] = wire
            self.silent[target, kind].sendto(wire, (target, self.port))
            self.poll(0)
            return
        while not self.idle[target]:
            self.poll(REPLY_TIMEOUT / 20)
        sock = self.idle[target].pop()
        self.pending[sock] = Pending(wire, target, time.monotonic() + REPLY_TIMEOUT)
        sock.sendto(wire, (target, self.port))

    def poll(self, timeout: float) -> None:
        """Take in whatever replies arrived within ``timeout``; give up on overdue queries."""
        for key, _ in self.selector.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            target, silent_kind = key.data
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                reply, source = sock.recvfrom(65535)
                self._received(sock, target, silent_kind, reply, source[0])
        self._expire(time.monotonic())

    def _received(
        self, sock: socket.socket, target: str, silent_kind: Broken | None, reply: bytes, src: str
    ) -> None:
        self.tally.replies += 1
        if src != target:
            self.tally.wrong_source += 1
        if silent_kind is not None:
            wire = self.silent_sent.get(reply[:2], b"")
            self.tally.record(Transport.UDP, wire, Verdict(silent_kind, f"reply {reply.hex()}"))
            return
        pending = self.pending.pop(sock, None)
        if pending is None:  # a second reply to a query already answered
            verdict = Verdict(Broken.WRONG_ID, f"unsolicited reply {reply.hex()}")
            self.tally.record(Transport.UDP, b"", verdict)
            return
        self.tally.record(
            Transport.UDP, pending.wire, check_reply(pending.wire, Transport.UDP, reply)
        )
        self.idle[target].append(sock)

    def _expire(self, now: float) -> None:
        """Overdue queries are unanswered; their sockets are replaced so that a late reply can
        never be blamed on the next packet."""
        for sock, pending in list(self.pending.items()):
            if pending.deadline < now:
                del self.pending[sock]
                self.tally.record(Transport.UDP, pending.wire, Verdict(Broken.UNANSWERED))
                self.selector.unregister(sock)
                sock.close()
                self.idle[pending.target].append(self._open(pending.target, None))

    def drain(self, quiet: float = 1.0) -> None:
        """Wait for every query in flight, then ``quiet`` seconds more for stray replies."""
        while self.pending:
            self.poll(REPLY_TIMEOUT / 20)
        end = time.monotonic() + quiet
        while (left := end - time.monotonic()) > 0:
            self.poll(left)

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


class TcpFuzzer:
    """Pipelines packets over TCP and mistreats connections the way broken clients do.

    Each connection carries packets of one kind (owed a reply, QR=1, or short) and ends with a
    marker query. Replies come back in order (RFC 7766 §7), so up to the marker's reply every
    frame belongs to one packet: to the next one owed a reply, or to a silent one (a violation).
    """

    def __init__(self, port: int, tally: Tally) -> None:
        self.port = port
        self.tally = tally
        self.queued: dict[tuple[str, Broken | None], list[bytes]] = {}
        self.stalled: deque[socket.socket] = deque()

    def send(self, target: str, wire: bytes) -> None:
        self.tally.sent[Transport.TCP] += 1
        queue = self.queued.setdefault((target, silence_owed(wire)), [])
        queue.append(wire)
        if len(queue) >= TCP_PIPELINE:
            self._exchange(target, silence_owed(wire), queue)
            queue.clear()

    def flush(self) -> None:
        for (target, kind), queue in self.queued.items():
            if queue:
                self._exchange(target, kind, queue)
                queue.clear()

    def _exchange(self, target: str, kind: Broken | None, packets: list[bytes]) -> None:
        marker = dns.message.make_query("marker.fuzz.test.", "A")
        owed = packets if kind is None else []
        replies, ended = self._converse(target, [*packets, marker.to_wire()], marker)
        self.tally.replies += len(replies)
        for wire, reply in zip(owed, replies, strict=False):
            self.tally.record(Transport.TCP, wire, check_reply(wire, Transport.TCP, reply))
        if ended is not None:
            for wire in [*owed[len(replies) :], marker.to_wire()]:
                self.tally.record(Transport.TCP, wire, Verdict(Broken.UNANSWERED, ended))
            return
        for reply in replies[len(owed) :]:
            wire = next((each for each in packets if each[:2] == reply[:2]), packets[0])
            extra = kind or Broken.WRONG_ID  # more replies than packets owed one
            self.tally.record(Transport.TCP, wire, Verdict(extra, f"reply {reply.hex()}"))

    def _converse(
        self, target: str, messages: list[bytes], marker: dns.message.Message
    ) -> tuple[list[bytes], str | None]:
        """Send ``messages`` on one connection; the reply frames before the marker's reply, and
        why the connection ended before that reply came (None when it came)."""
        replies: list[bytes] = []
        try:
            with socket.create_connection((target, self.port), timeout=REPLY_TIMEOUT) as sock:
                sock.sendall(b"".join(frame(message) for message in messages))
                while not _answers(marker, reply := _read_frame(sock)):
                    replies.append(reply)
        except OSError as error:
            return replies, f"TCP [{target}]:{self.port}: {type(error).__name__}: {error}"
        return replies, None

    def mistreat(self, target: str, rng: random.Random, packet: bytes) -> None:
        """Connections a careless or hostile client leaves behind: stalled mid-message, cut
        mid-message or mid-prefix, reset with a query unread, or ended by a zero length."""
        framed = frame(packet)
        cut = rng.randrange(1, len(framed))
        for data, how in (
            (framed[:cut], "stall"),
            (framed[:cut], "close"),
            (framed[:1], "close"),
            (framed, "reset"),
            (framed + b"\x00\x00", "close"),
        ):
            try:
                sock = socket.create_connection((target, self.port), timeout=REPLY_TIMEOUT)
            except OSError:
                continue  # the probe after this batch tells whether the daemon stopped accepting
            with contextlib.suppress(OSError):
                sock.sendall(data)
                if how == "reset":  # SO_LINGER on, 0 s: close() sends RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if how == "stall":
                self._keep_stalled(sock)
            else:
                sock.close()

    def _keep_stalled(self, sock: socket.socket) -> None:
        """Hold a stalled connection open; the oldest goes once STALLED_MAX are held."""
        self.stalled.append(sock)
        if len(self.stalled) > STALLED_MAX:
            self.stalled.popleft().close()

    def close(self) -> None:
        while self.stalled:
            self.stalled.popleft().close()


def _answers(query: dns.message.Message, reply: bytes) -> bool:
    try:
        return query.is_response(dns.message.from_wire(reply))
    except (dns.exception.DNSException, ValueError):
        return False


def _read_frame(sock: socket.socket) -> bytes:
    length = int.from_bytes(_read_exactly(sock, 2), "big")
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server before the marker's reply")
        data += chunk
    return bytes(data)


def probe(port: int, tally: Tally) -> bool:
    """A valid query over UDP to each target must be answered, from the address it was sent to
    (``ignore_unexpected=False`` turns a reply from elsewhere into an error), and over TCP."""
    tally.probes += 1
    failures = []
    for target in TARGETS:
        for transport, ask in ((Transport.UDP, _ask_udp), (Transport.TCP, _ask_tcp)):
            try:
                ask(target, port)
            except (OSError, dns.exception.DNSException, ValueError) as error:
                failures.append(f"{transport.name} [{target}]:{port}: {type(error).__name__}")
    tally.probe_failures += failures
    return not failures


def _ask_udp(target: str, port: int) -> None:
    dns.query.udp(PROBE, target, port=port, timeout=REPLY_TIMEOUT, ignore_unexpected=False)


def _ask_tcp(target: str, port: int) -> None:
    dns.query.tcp(PROBE, target, port=port, timeout=REPLY_TIMEOUT)


def fuzz(port: int, args: argparse.Namespace, names: list[dns.name.Name], tally: Tally) -> bool:
    """Send ``args.packets`` packets within ``args.seconds``, probing between batches; stop
    early when a probe fails (a dead or wedged daemon makes every later packet time out).
    Whether the daemon still answers at the end."""
    generator = PacketGenerator(args.seed, names)
    chooser = random.Random(~args.seed)  # target and transport, apart from the packets' RNG
    udp, tcp = UdpFuzzer(port, tally), TcpFuzzer(port, tally)
    deadline = time.monotonic() + args.seconds
    try:
        for index in range(args.packets):
            if time.monotonic() > deadline:
                break
            wire = generator.packet()
            target = chooser.choice(TARGETS)
            if wire and chooser.random() < TCP_SHARE:
                tcp.send(target, wire)
            else:
                udp.send(target, wire)
            if (index + 1) % BATCH == 0:
                tcp.mistreat(target, chooser, PROBE.to_wire())
                if not probe(port, tally):
                    break
                _progress(index + 1, tally)
        tcp.flush()
        udp.drain()
    finally:
        udp.close()
        tcp.close()
    return probe(port, tally)


def _progress(done: int, tally: Tally) -> None:
    broken = sum(tally.broken.values())
    print(f"  {done:,} packets, {tally.replies:,} replies, {broken} broken", file=sys.stderr)


@contextlib.contextmanager
def local_daemon(workdir: Path, zones: dict[str, Path]) -> Iterator[Daemon]:
    """nameserverd on 127.0.0.1 and ::1 only, on a free port, until the block ends; stopped
    with SIGTERM, and DaemonError when it does not exit cleanly (as in the integration suite).
    """
    port = free_port()
    config = write_config(
        workdir / "nameserverd.yaml", port=port, ipv6_only=False, listen=TARGETS, zones=zones
    )
    notify = NotifyEndpoint(workdir / "notify.sock")
    log_path = workdir / "nameserverd.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(daemon_executable()), "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    daemon = Daemon(proc=proc, log_path=log_path, port=port, netns="the bench's", notify=notify)
    problem = notify.wait_ready(proc, READY_TIMEOUT)
    if problem is not None:
        with contextlib.suppress(DaemonError):
            daemon.stop()
        raise DaemonError(f"nameserverd {problem}\n{daemon.describe()}")
    try:
        yield daemon
    finally:
        daemon.stop()


def report(tally: Tally, alive: bool, internal_errors: int | None, elapsed: float) -> bool:
    """Print the table, then examples of what broke; True when every "must be" holds.

    ``internal_errors`` is None for a daemon started by someone else: its log is not ours.
    """
    udp, tcp = tally.sent[Transport.UDP], tally.sent[Transport.TCP]
    rows: list[tuple[str, str, str, bool]] = [  # measure, value, must be, holds
        ("packets sent (UDP / TCP)", f"{udp + tcp:,} ({udp:,} / {tcp:,})", "", True),
        ("replies received", f"{tally.replies:,}", "", True),
    ]
    rows += [
        (kind.value, str(tally.broken[kind]), "0", not tally.broken[kind])
        for kind in Broken
        if kind is not Broken.RAISED  # the daemon's own tracebacks are counted below
    ]
    rows += [
        ("replies from an address not asked", str(tally.wrong_source), "0", not tally.wrong_source),
        (
            "probes (valid queries between batches) failed",
            f"{len(tally.probe_failures)} of {tally.probes * 2 * len(TARGETS)}",
            "0",
            not tally.probe_failures,
        ),
        (
            "daemon tracebacks logged",
            "not read (--port)" if internal_errors is None else str(internal_errors),
            "0",
            not internal_errors,
        ),
        ("daemon alive", "yes" if alive else "no", "yes", alive),
        ("elapsed", f"{elapsed:.1f} s ({(udp + tcp) / elapsed:,.0f} packets/s)", "", True),
    ]
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    print(f"| {'measure':<{width}} | {'value':<{value_width}} | must be |")
    print(f"|{'-' * (width + 2)}|{'-' * (value_width + 2)}|---------|")
    for measure, value, want, holds in rows:
        flag = "" if holds else "  <-- VIOLATED"
        print(f"| {measure:<{width}} | {value:<{value_width}} | {want:<7} |{flag}")
    for example in tally.examples:
        print(example)
    for failure in tally.probe_failures[:SHOWN_EXAMPLES]:
        print(f"probe failed: {failure}")
    return all(row[3] for row in rows)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--seconds", type=float, default=900, help="time limit, default 900")
    parser.add_argument("--seed", type=lambda text: int(text, 0), default=SEED)
    parser.add_argument("--port", type=int, help="fuzz a daemon already on 127.0.0.1 and ::1")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="nameserverd-fuzz-") as scratch:
        settings = write_fuzz_zones(Path(scratch))
        names = zone_names(load_zones(settings))
        print(f"fuzz seed {args.seed:#x}: {args.packets:,} packets, {args.seconds:g} s at most")
        log: str | None = None  # a daemon started by someone else keeps its log to itself
        start = time.monotonic()
        if args.port is not None:
            alive = fuzz(args.port, args, names, tally)
            elapsed = time.monotonic() - start
        else:
            zones = {str(hosted.name): hosted.file for hosted in settings}
            with local_daemon(Path(scratch), zones) as daemon:
                alive = fuzz(daemon.port, args, names, tally) and daemon.alive()
                elapsed = time.monotonic() - start
                log = daemon.log()
    internal_errors = None if log is None else log.count(INTERNAL_ERROR)
    holds = report(tally, alive, internal_errors, elapsed)
    if log is not None and internal_errors:
        print(f"the daemon's first traceback:\n{first_traceback(log)}")
    return 0 if holds else 1


def first_traceback(log: str) -> str:
    """The first INTERNAL_ERROR line of the daemon's log and the traceback under it (log lines
    start with a timestamp, traceback lines do not)."""
    lines = log[log.index(INTERNAL_ERROR) :].splitlines()
    return "\n".join(
        [lines[0], *itertools.takewhile(lambda line: not line[:1].isdigit(), lines[1:])]
    )


if __name__ == "__main__":
    sys.exit(main())
