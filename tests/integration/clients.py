"""Two independent DNS clients that refuse replies from the wrong address.

Every integration case is asked with both:

* ``dig`` (BIND's client, run with ``ip netns exec``). It ignores a reply whose source is not
  the address it asked, so a wrong-source reply shows up as a timeout; ``+time=2 +tries=1``
  keeps that failure quick.
* dnspython's ``dns.query.udp(..., ignore_unexpected=False)``, which raises ``UnexpectedSource``
  for such a reply, and ``dns.query.tcp``. It runs in a thread that joined the namespace.

Both return the same ``Reply`` so that the tests' assertions do not care who asked.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from .netns import netns_argv, run_in_netns

RR = tuple[str, str, str]
"""One record as ``(owner in lower case, type mnemonic, rdata text)``."""

DEFAULT_TIMEOUT = 2.0
DEFAULT_PAYLOAD = 1232


class QueryFailed(AssertionError):
    """No acceptable reply: timeout, unreachable, or a reply from an unexpected source."""


@dataclass(frozen=True)
class Target:
    """Where a query goes: a server address as seen from the namespace the client runs in."""

    netns: str
    address: str  # may carry a scope, e.g. "fe80::53%vethc"
    port: int
    source: str | None = None  # the client's source address, when it matters

    @property
    def host(self) -> str:
        """The address without its scope, normalised (what a reply's source must equal)."""
        return normalise_address(self.address)

    def __str__(self) -> str:
        source = f" from {self.source}" if self.source else ""
        return f"{self.address}#{self.port}{source} in {self.netns}"


@dataclass(frozen=True)
class Reply:
    """What a client accepted, in a client-neutral form."""

    client: str
    rcode: str
    flags: frozenset[str]
    question: tuple[str, ...]  # owner names exactly as they came back (letter case kept)
    answer: tuple[RR, ...]
    authority: tuple[RR, ...]
    additional: tuple[RR, ...]
    server: str  # the address the reply came from, normalised, no scope
    transport: str  # "UDP" or "TCP"
    text: str = field(repr=False)  # the client's own rendering, for failure messages

    def rdatas(self, section: str, owner: str, rdtype: str) -> set[str]:
        """The rdata texts of ``owner``/``rdtype`` in ``section`` ("answer", ...)."""
        records: tuple[RR, ...] = getattr(self, section)
        return {rdata for name, kind, rdata in records if name == owner.lower() and kind == rdtype}


class Client(Protocol):
    """Anything that can ask one question of a target and return a Reply."""

    name: str

    def ask(
        self,
        target: Target,
        qname: str,
        rdtype: str,
        *,
        tcp: bool = False,
        payload: int | None = DEFAULT_PAYLOAD,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """Ask ``qname``/``rdtype``; ``payload`` None means no EDNS; raise QueryFailed."""
        ...

    def ask_many(
        self, target: Target, questions: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Ask several questions over one TCP connection; replies in the questions' order."""
        ...


def normalise_address(address: str) -> str:
    """Drop a ``%scope`` and print the address canonically, for comparisons."""
    return ipaddress.ip_address(address.split("%")[0]).compressed


def normalise_rdata(rdtype: str, text: str) -> str:
    """Re-render rdata text through dnspython so that dig's and dnspython's texts compare."""
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False
    )
    return rdata.to_text()


# --- dig ------------------------------------------------------------------------------------

_SECTION = re.compile(r"^;; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:$")
_HEADER = re.compile(r"^;; ->>HEADER<<- opcode: \S+, status: (\S+), id: \d+$")
_FLAGS = re.compile(r"^;; flags:([^;]*);")
_SERVER = re.compile(r"^;; SERVER: (\S+)#\d+\(.*\) \((UDP|TCP)\)$")


def _dig_record(line: str) -> RR:
    """Parse ``owner ttl class type rdata`` from one dig section line."""
    owner, _ttl, _cls, rdtype, rdata = line.split(None, 4)
    return owner.lower(), rdtype, normalise_rdata(rdtype, rdata)


def _dig_block(lines: list[str], text: str) -> Reply:
    """Turn the lines of one dig answer (HEADER line to SERVER line) into a Reply."""
    status, flags, server, transport = "", frozenset[str](), "", ""
    sections: dict[str, list] = {"QUESTION": [], "ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
    current: str | None = None
    for line in lines:
        if match := _HEADER.match(line):
            status = match.group(1).rstrip(",")
        elif match := _FLAGS.match(line):
            flags = frozenset(match.group(1).split())
        elif match := _SERVER.match(line):
            server, transport = normalise_address(match.group(1)), match.group(2)
        elif match := _SECTION.match(line):
            current = match.group(1)
        elif not line.strip():
            current = None
        elif current == "QUESTION":
            sections[current].append(line.lstrip(";").split()[0])
        elif current and not line.startswith(";"):
            sections[current].append(_dig_record(line))
    return Reply(
        client="dig",
        rcode=status,
        flags=flags,
        question=tuple(sections["QUESTION"]),
        answer=tuple(sections["ANSWER"]),
        authority=tuple(sections["AUTHORITY"]),
        additional=tuple(sections["ADDITIONAL"]),
        server=server,
        transport=transport,
        text=text,
    )


def parse_dig(text: str) -> list[Reply]:
    """Split dig's output into one Reply per answer it printed (several with ``+keepopen``)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if _HEADER.match(line):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    return [_dig_block(block, text) for block in blocks]


@dataclass(frozen=True)
class DigClient:
    """``dig`` inside the target's namespace."""

    name: str = "dig"

    @staticmethod
    def available() -> bool:
        """Whether dig is installed (tests using it skip otherwise)."""
        return shutil.which("dig") is not None

    def argv(self, target: Target, tcp: bool, payload: int | None, timeout: float) -> list[str]:
        """The dig options shared by single and multi-question runs."""
        argv = ["dig", f"@{target.address}", "-p", str(target.port)]
        if target.source:
            argv += ["-b", target.source]
        argv += [f"+time={max(1, round(timeout))}", "+tries=1", "+norecurse"]
        # UDP stays UDP: +ignore shows a truncated answer instead of retrying over TCP.
        argv.append("+tcp" if tcp else "+ignore")
        argv.append("+noedns" if payload is None else f"+bufsize={payload}")
        return argv

    def run(self, target: Target, argv: list[str], timeout: float) -> list[Reply]:
        """Run dig in the target's namespace; QueryFailed unless it printed an answer."""
        done = subprocess.run(
            netns_argv(target.netns, argv),
            capture_output=True,
            text=True,
            timeout=timeout * 4 + 10,
            check=False,
        )
        replies = parse_dig(done.stdout)
        if done.returncode != 0 or not replies:
            raise QueryFailed(
                f"dig to {target} got no acceptable reply (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        return replies

    def ask(
        self,
        target: Target,
        qname: str,
        rdtype: str,
        *,
        tcp: bool = False,
        payload: int | None = DEFAULT_PAYLOAD,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """One question, one reply."""
        argv = [*self.argv(target, tcp, payload, timeout), qname, rdtype]
        (reply,) = self.run(target, argv, timeout)
        return reply

    def ask_many(
        self, target: Target, questions: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Several questions over one TCP connection (``+keepopen``), replies in order."""
        argv = [*self.argv(target, True, DEFAULT_PAYLOAD, timeout), "+keepopen"]
        for qname, rdtype in questions:
            argv += [qname, rdtype]
        return self.run(target, argv, timeout)


# --- dnspython ------------------------------------------------------------------------------


def _records(section: list) -> tuple[RR, ...]:
    """Flatten dnspython RRsets into RR tuples."""
    return tuple(
        (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in section
        for rdata in rrset
    )


def from_message(message: dns.message.Message, server: str, transport: str) -> Reply:
    """Convert a dnspython response into a Reply."""
    return Reply(
        client="dnspython",
        rcode=dns.rcode.to_text(message.rcode()),
        flags=frozenset(dns.flags.to_text(message.flags).lower().split()),
        question=tuple(rrset.name.to_text() for rrset in message.question),
        answer=_records(message.answer),
        authority=_records(message.authority),
        additional=_records(message.additional),
        server=server,
        transport=transport,
        text=message.to_text(),
    )


def make_query(qname: str, rdtype: str, payload: int | None) -> dns.message.Message:
    """A non-recursive query, with EDNS0 at ``payload`` unless it is None."""
    query = dns.message.make_query(
        qname,
        rdtype,
        use_edns=False if payload is None else 0,
        payload=payload or DEFAULT_PAYLOAD,
    )
    query.flags &= ~dns.flags.RD
    return query


@dataclass(frozen=True)
class DnspythonClient:
    """dnspython's strict clients, run in a thread that joined the target's namespace."""

    name: str = "dnspython"

    def ask(
        self,
        target: Target,
        qname: str,
        rdtype: str,
        *,
        tcp: bool = False,
        payload: int | None = DEFAULT_PAYLOAD,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """One question; a reply from any other address than the target is a QueryFailed."""
        query = make_query(qname, rdtype, payload)
        where, port, source = target.address, target.port, target.source
        try:
            if tcp:
                message = run_in_netns(
                    target.netns, dns.query.tcp, query, where, timeout, port, source
                )
            else:
                message = run_in_netns(
                    target.netns,
                    dns.query.udp,
                    query,
                    where,
                    timeout=timeout,
                    port=port,
                    source=source,
                    ignore_unexpected=False,
                )
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise QueryFailed(
                f"dnspython to {target} got no acceptable reply: {type(exc).__name__}: {exc}"
            ) from exc
        # ignore_unexpected=False guarantees the source; TCP is connected to the target.
        return from_message(message, target.host, "TCP" if tcp else "UDP")

    def ask_many(
        self, target: Target, questions: list[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Reply]:
        """Several questions pipelined on one TCP connection (RFC 7766), replies in order.

        All queries are written before any reply is read, and replies are matched by ID, since
        the server may answer them out of order.
        """
        queries = [make_query(qname, rdtype, DEFAULT_PAYLOAD) for qname, rdtype in questions]
        for index, query in enumerate(queries):
            query.id = 0x5300 + index  # distinct IDs to match replies with
        try:
            messages = run_in_netns(target.netns, _pipelined, target, queries, timeout)
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise QueryFailed(
                f"dnspython pipelining to {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return [from_message(message, target.host, "TCP") for message in messages]


def connect_tcp(target: Target, timeout: float) -> socket.socket:
    """A TCP connection to the target (call inside its namespace: scope names resolve there)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        target.address, target.port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(timeout)
        if target.source:
            sock.bind((target.source, 0))
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _pipelined(
    target: Target, queries: list[dns.message.Message], timeout: float
) -> list[dns.message.Message]:
    """Write every query, then read as many replies; return them in the queries' order."""
    expiration = time.time() + timeout
    with connect_tcp(target, timeout) as sock:
        frames = [query.to_wire() for query in queries]
        sock.sendall(b"".join(struct.pack("!H", len(frame)) + frame for frame in frames))
        replies: dict[int, dns.message.Message] = {}
        while len(replies) < len(queries):
            message, _ = dns.query.receive_tcp(sock, expiration)
            replies[message.id] = message
    for query in queries:
        assert query.is_response(replies[query.id]), f"reply does not match query {query.id}"
    return [replies[query.id] for query in queries]


def open_udp(target: Target) -> tuple[socket.socket, tuple]:
    """A UDP socket bound to the target's source, plus the sockaddr to send to.

    For raw datagrams (malformed queries, size checks). Call inside the target's namespace.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        target.address, target.port, type=socket.SOCK_DGRAM
    )[0]
    sock = socket.socket(family, kind, proto)
    if target.source:
        sock.bind((target.source, 0))
    return sock, address


def collect_datagrams(
    sock: socket.socket, until: float, first_only: bool = False
) -> list[tuple[bytes, str]]:
    """Everything ``sock`` receives before the monotonic time ``until``: (payload, source)."""
    received: list[tuple[bytes, str]] = []
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            payload, peer = sock.recvfrom(65535)
        except TimeoutError:
            break
        received.append((payload, normalise_address(peer[0])))
        if first_only:
            break
    return received


CLIENTS: dict[str, Client] = {"dig": DigClient(), "dnspython": DnspythonClient()}
