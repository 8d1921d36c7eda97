"""Count the queries nameserverd loses while it reloads (SIGHUP) under a steady dnsperf load.

The issue's promise: changed zones are served by every worker within seconds of a SIGHUP, and
no query is lost during a reload under load. This measures it. Run from the repository root::

    .venv/bin/python -m bench.reload_under_load [--seconds D] [--reload-every R] [--workers N]
                                                [--names N] [--share S | --rate Q] [--transport T]

It needs ``dnsperf`` (Debian package ``dnsperf``) and installs nothing: without it, it says so
and exits 2. It starts the installed ``nameserverd`` on a free port of 127.0.0.1 and ::1 (the
fuzz bench's ``local_daemon``) with a generated zone, then runs dnsperf against 127.0.0.1
three times: once flat out to measure what this machine sustains, once at a fixed share of
that rate without reloads (the baseline), and once at the same rate while the zone file is
rewritten and the daemon sent SIGHUP every R seconds, each reload awaited (RELOADING=1, then
READY=1 naming the new serial). A query dnsperf gets no answer to within 2 s is lost; beside
dnsperf's count the table has the kernel's drop count of the daemon's UDP sockets, which tells
a datagram that was never read (receive queue full) from one a worker read and left unanswered,
and the machine's other UDP receive-buffer drops: replies dnsperf's own socket had no room for
(a 2-core machine starves dnsperf now and then), which dnsperf counts lost too.
``--transport tcp`` sends the same load over TCP connections instead.

Exit status 1 when the reload run lost more queries than the baseline (replies the client's
own socket dropped not counted), a reload failed, the last zone version is not served
afterwards, or the daemon did not stop cleanly; 2 when dnsperf or the daemon is missing.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import yaml

from bench.fuzz_daemon import TARGETS, local_daemon
from tests.integration.daemon import Daemon, DaemonError, daemon_executable
from tests.integration.test_supervisor import children, reload

ORIGIN = "bench.test."
BASE_SERIAL = 2026112500
CHANGED = f"changed.{ORIGIN}"
# The one address that differs between the two zone versions, so every reload changes data.
CHANGED_ADDRESSES = ("192.0.2.1", "192.0.2.2")
NXDOMAIN_EVERY = 5  # one query for a missing name after every fifth name's A and AAAA
QUERY_TIMEOUT = 2.0  # seconds; dnsperf counts a query unanswered after this as lost
CAPACITY_SECONDS = 5.0  # the flat-out run that picks the fixed rate
MAX_IN_FLIGHT = 65_535  # dnsperf's query IDs on one socket
TCP_CLIENTS = 4  # dnsperf's connections over TCP
DNSPERF_GRACE = 30.0  # seconds past its own limits before a dnsperf run is killed
# Daemon log lines that mean a reload did not go as designed.
LOG_ALARMS = ("did not stop in time", "worker failed", "internal error", "Traceback")


@dataclass
class ZoneFile:
    """The benchmark zone, rewritten to a new version for every reload.

    Version v has serial BASE_SERIAL + v and serves CHANGED at CHANGED_ADDRESSES[v % 2]: the
    serial is always new and the data always differs from what the workers hold.
    """

    path: Path
    names: int
    version: int = 0

    def write(self) -> None:
        """Replace the file atomically, so a reload never reads half of it."""
        records = [
            f"$ORIGIN {ORIGIN}",
            "$TTL 300",
            f"@ IN SOA ns1 hostmaster {self.serial} 7200 3600 1209600 300",
            "@ IN NS ns1",
            "ns1 IN A 127.0.0.1",
            f"changed IN A {self.address}",
        ]
        for index in range(self.names):
            records.append(f"h{index} IN A 10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}")
            records.append(f"h{index} IN AAAA 2001:db8::{index:x}")
        scratch = self.path.with_suffix(".new")
        scratch.write_text("\n".join(records) + "\n")
        os.replace(scratch, self.path)

    def bump(self) -> None:
        self.version += 1
        self.write()

    @property
    def serial(self) -> int:
        return BASE_SERIAL + self.version

    @property
    def address(self) -> str:
        return CHANGED_ADDRESSES[self.version % 2]


def write_queries(path: Path, names: int) -> Path:
    """dnsperf's input: A and AAAA of every name (CHANGED included) and some NXDOMAIN names."""
    lines = [f"{CHANGED} A"]
    for index in range(names):
        lines += [f"h{index}.{ORIGIN} A", f"h{index}.{ORIGIN} AAAA"]
        if index % NXDOMAIN_EVERY == NXDOMAIN_EVERY - 1:
            lines.append(f"nx{index}.{ORIGIN} A")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Load:
    """One dnsperf run's traffic: where, what, how long, how fast (None: flat out), how."""

    port: int
    queries: Path
    seconds: float
    rate: int | None
    transport: str  # dnsperf's -m: udp or tcp

    @property
    def offered(self) -> int | None:
        return None if self.rate is None else round(self.rate * self.seconds)


@dataclass
class Measured:
    """What dnsperf reported for one run, plus what the benchmark counted around it."""

    sent: int
    completed: int
    lost: int
    rcodes: str
    qps: float
    latency_avg: float
    latency_max: float
    reconnections: int | None = None  # TCP only
    offered: int | None = None  # rate x seconds at a fixed rate; more than sent if dnsperf lagged
    reloads: int = 0
    kernel_drops: int = 0  # datagrams the server's sockets dropped (receive queue full)
    # Replies the load generator's own sockets dropped: every UDP receive-buffer error on the
    # machine during the run, less the server's. dnsperf then counts them lost.
    client_drops: int = 0
    reload_seconds: list[float] = field(default_factory=list)
    drops_while_reloading: int = 0  # of kernel_drops, between a SIGHUP and its READY=1

    @property
    def lost_percent(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    @property
    def lost_by_server(self) -> int:
        """Lost queries the client did not drop itself: never answered, or answered late."""
        return max(0, self.lost - self.client_drops)


_FIELDS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "rcodes": r"Response codes:\s+(.*)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "latency_avg": r"Average Latency \(s\):\s+([\d.]+)",
    "latency_max": r"Average Latency \(s\):.*max ([\d.]+)\)",
}
_RECONNECTIONS = r"Reconnections:\s+(\d+)"


def parse_dnsperf(output: str) -> Measured:
    """The statistics block dnsperf 2.x prints at the end; ValueError when one is missing."""
    values: dict[str, str] = {}
    for name, pattern in _FIELDS.items():
        found = re.search(pattern, output)
        if found is None:
            raise ValueError(f"no {name!r} ({pattern}) in dnsperf's output:\n{output}")
        values[name] = found.group(1).strip()
    reconnections = re.search(_RECONNECTIONS, output)
    return Measured(
        sent=int(values["sent"]),
        completed=int(values["completed"]),
        lost=int(values["lost"]),
        rcodes=values["rcodes"],
        qps=float(values["qps"]),
        latency_avg=float(values["latency_avg"]),
        latency_max=float(values["latency_max"]),
        reconnections=None if reconnections is None else int(reconnections.group(1)),
    )


class DnsperfRun:
    """dnsperf to 127.0.0.1 as a ``Load`` says, for a ``with`` block that ends it if still running.

    Its output goes to a file, not a pipe: dnsperf prints a line for every query that times
    out, and once a pipe nobody reads during the run is full, every dnsperf thread blocks on
    its log lock for seconds, then sends the queries it owes at once, and that burst is lost.

    At a fixed rate, dnsperf may keep twice a timeout's worth of queries in flight (``-q``):
    with its default of 100 it stops sending while 100 are unanswered, so a server that stalls
    would receive fewer queries instead of losing or delaying them, and the stall would hide.
    Over TCP it uses TCP_CLIENTS connections, so that a reload meets several.
    """

    def __init__(self, load: Load) -> None:
        self.load = load
        argv = ["dnsperf", "-m", load.transport, "-s", TARGETS[0], "-p", str(load.port)]
        argv += ["-d", str(load.queries), "-l", f"{load.seconds:g}", "-t", f"{QUERY_TIMEOUT:g}"]
        if load.rate is not None:
            in_flight = min(MAX_IN_FLIGHT, max(100, math.ceil(2 * load.rate * QUERY_TIMEOUT)))
            argv += ["-Q", str(load.rate), "-q", str(in_flight)]
        if load.transport == "tcp":
            argv += ["-c", str(TCP_CLIENTS)]
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self.proc = subprocess.Popen(argv, stdout=self._output, stderr=subprocess.STDOUT)

    def __enter__(self) -> DnsperfRun:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._output.close()

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self) -> Measured:
        """Wait for the end (bounded: past its limits and DNSPERF_GRACE it is an error)."""
        try:
            self.proc.wait(timeout=self.load.seconds + QUERY_TIMEOUT + DNSPERF_GRACE)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"dnsperf ran past {self.load.seconds:g} s and the grace") from None
        self._output.seek(0)
        output = self._output.read().decode(errors="replace")
        if self.proc.returncode != 0:
            raise RuntimeError(f"dnsperf exited with status {self.proc.returncode}:\n{output}")
        measured = parse_dnsperf(output)
        measured.offered = self.load.offered
        return measured


def socket_drops(port: int) -> int:
    """The kernel's drop count of the daemon's UDP sockets on ``port``: datagrams that arrived
    while the receive queue was full. The supervisor keeps these sockets across reloads, so
    the difference over a run counts what no worker read in time, whichever generation."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            if int(columns[1].rsplit(":", 1)[1], 16) == port:
                total += int(columns[-1])
    return total


def receive_buffer_errors() -> int:
    """The machine's count of UDP datagrams dropped for a full receive buffer, both families
    (``RcvbufErrors`` in /proc/net/snmp, ``Udp6RcvbufErrors`` in /proc/net/snmp6)."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    names, values = (line.split() for line in lines if line.startswith("Udp:"))
    total = int(values[names.index("RcvbufErrors")])
    for line in Path("/proc/net/snmp6").read_text().splitlines():
        name, value = line.split()
        if name == "Udp6RcvbufErrors":
            total += int(value)
    return total


def measure(load: Load) -> Measured:
    """One dnsperf run without reloads."""
    drops, everywhere = socket_drops(load.port), receive_buffer_errors()
    with DnsperfRun(load) as dnsperf:
        result = dnsperf.result()
    count_drops(result, load.port, drops, everywhere)
    return result


def count_drops(result: Measured, port: int, drops: int, everywhere: int) -> None:
    """Fill in the server's and the client's drops since the counts ``drops`` (the server's
    sockets) and ``everywhere`` (the machine's) were read."""
    result.kernel_drops = socket_drops(port) - drops
    result.client_drops = receive_buffer_errors() - everywhere - result.kernel_drops


def measure_with_reloads(daemon: Daemon, zone: ZoneFile, load: Load, every: float) -> Measured:
    """One dnsperf run during which the zone changes and the daemon reloads every ``every``
    seconds; each reload is awaited to its READY=1, which must name the new serial."""
    drops, everywhere = socket_drops(load.port), receive_buffer_errors()
    reloads: list[Reload] = []
    with DnsperfRun(load) as dnsperf:
        for _ in reload_times(time.monotonic(), load.seconds, every):
            if not dnsperf.running():
                break
            reloads.append(reload_to_next_version(daemon, zone))
        result = dnsperf.result()
    count_drops(result, load.port, drops, everywhere)
    result.reloads = len(reloads)
    result.reload_seconds = [reload.seconds for reload in reloads]
    result.drops_while_reloading = sum(reload.drops for reload in reloads)
    return result


def reload_times(start: float, seconds: float, every: float) -> Iterator[None]:
    """Sleep until each reload is due (every ``every`` s after ``start``, before the end)."""
    due = start + every
    while due < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        yield
        due = max(due + every, time.monotonic())


@dataclass(frozen=True)
class Reload:
    """One reload: seconds from SIGHUP to READY=1, and the kernel's UDP drops meanwhile."""

    seconds: float
    drops: int


def reload_to_next_version(daemon: Daemon, zone: ZoneFile) -> Reload:
    """Write the next zone version, SIGHUP, await READY=1 naming its serial."""
    zone.bump()
    drops = socket_drops(daemon.port)
    began = time.monotonic()
    ready = reload(daemon)
    took = time.monotonic() - began
    if f"serial {zone.serial}" not in ready.get("STATUS", ""):
        raise DaemonError(f"reload to serial {zone.serial} ended with {ready}\n{daemon.log()}")
    return Reload(took, socket_drops(daemon.port) - drops)


def set_workers(daemon: Daemon, workers: int) -> None:
    """Give the running daemon ``workers`` workers by editing its configuration and reloading.

    ``local_daemon`` starts the default single worker; a reload re-reads ``server.workers``,
    so this reaches the wanted count before any measuring, without another way to start.
    """
    config = Path(daemon.proc.args[daemon.proc.args.index("--config") + 1])
    document = yaml.safe_load(config.read_text())
    document["server"]["workers"] = workers
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    reload(daemon)
    running = len(children(daemon.proc.pid))
    if running != workers:
        raise DaemonError(f"{running} workers after the reload, not {workers}\n{daemon.log()}")


def served_problems(port: int, zone: ZoneFile) -> list[str]:
    """Whether both addresses serve the last version: CHANGED's address and the SOA serial."""
    problems = []
    for target in TARGETS:
        for name, rdtype, want in ((CHANGED, "A", zone.address), (ORIGIN, "SOA", zone.serial)):
            try:
                got = answer_values(target, port, name, rdtype)
            except (OSError, dns.exception.DNSException) as error:
                got = [f"{type(error).__name__}: {error}"]
            if got != [str(want)]:
                problems.append(f"{name} {rdtype} at {target}: {got}, not {want}")
    return problems


def answer_values(target: str, port: int, name: str, rdtype: str) -> list[str]:
    """The answer's rdata (an SOA's serial), asked over UDP; a reply from any address but
    ``target`` is an error (``ignore_unexpected=False``), as in the integration suite."""
    query = dns.message.make_query(name, rdtype)
    reply = dns.query.udp(query, target, port=port, timeout=QUERY_TIMEOUT, ignore_unexpected=False)
    if reply.rcode() != dns.rcode.NOERROR:
        return [dns.rcode.to_text(reply.rcode())]
    return [str(getattr(rdata, "serial", rdata)) for rrset in reply.answer for rdata in rrset]


HEADER = (
    "run",
    "reloads",
    "offered",
    "sent",
    "completed",
    "lost",
    "lost %",
    "QPS",
    "avg ms",
    "max ms",
    "kernel drops",
    "client drops",
)


def table_row(name: str, run: Measured) -> tuple[str, ...]:
    """One run as the cells of HEADER."""
    return (
        name,
        str(run.reloads),
        "-" if run.offered is None else f"{run.offered:,}",
        f"{run.sent:,}",
        f"{run.completed:,}",
        f"{run.lost:,}",
        f"{run.lost_percent:.3f}",
        f"{run.qps:,.0f}",
        f"{run.latency_avg * 1000:.2f}",
        f"{run.latency_max * 1000:.1f}",
        str(run.kernel_drops),
        str(run.client_drops),
    )


def print_table(runs: dict[str, Measured]) -> None:
    """The results as a Markdown table, then each run's response codes and reload timings."""
    rows = [HEADER] + [table_row(name, run) for name, run in runs.items()]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    for index, row in enumerate(rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("| " + " | ".join(cells) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for name, run in runs.items():
        print(f"{name}: response codes {run.rcodes}")
        if run.reconnections is not None:
            print(f"{name}: dnsperf reconnected {run.reconnections} times over TCP")
        if run.reload_seconds:
            slowest = max(run.reload_seconds)
            mean = sum(run.reload_seconds) / len(run.reload_seconds)
            print(
                f"{name}: SIGHUP to READY=1 {mean * 1000:.0f} ms mean, {slowest * 1000:.0f} max; "
                f"{run.drops_while_reloading} of the kernel drops fell in these windows"
            )


def log_alarms(log: str) -> list[str]:
    """The daemon's log lines that say a reload or a worker went wrong."""
    return [line for line in log.splitlines() if any(alarm in line for alarm in LOG_ALARMS)]


def missing_prerequisite() -> str | None:
    """Why the benchmark cannot run here, or None: dnsperf and the installed daemon."""
    if shutil.which("dnsperf") is None:
        return "dnsperf is not on PATH: install it first (Debian: apt-get install dnsperf)"
    try:
        daemon_executable()
    except DaemonError as error:
        return str(error)
    return None


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="each run's length, default 20")
    parser.add_argument("--reload-every", type=float, default=2, help="seconds, default 2")
    parser.add_argument("--workers", type=int, default=2, help="default 2")
    parser.add_argument("--names", type=int, default=1000, help="zone size, default 1,000")
    # A quarter: dnsperf at a fixed rate costs more CPU than flat out, and on a 2-core machine
    # shared with two workers, the baseline itself lost replies at 0.4 (none in the daemon's
    # sockets), which leaves nothing to compare.
    parser.add_argument("--share", type=float, default=0.25, help="of the flat-out QPS, 0.25")
    parser.add_argument("--rate", type=int, help="queries/s; skips the flat-out run")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp", help="default udp")
    return parser.parse_args()


def run(args: argparse.Namespace, scratch: Path) -> tuple[dict[str, Measured], list[str]]:
    """Start the daemon, measure the runs, check what is served afterwards; the runs by name
    and every problem found besides lost queries."""
    zone = ZoneFile(scratch / "bench.test.zone", args.names)
    zone.write()
    queries = write_queries(scratch / "queries.txt", args.names)
    runs: dict[str, Measured] = {}
    with local_daemon(scratch, {ORIGIN: zone.path}) as daemon:
        set_workers(daemon, args.workers)
        load = Load(daemon.port, queries, args.seconds, args.rate, args.transport)
        if load.rate is None:
            runs["flat out"] = measure(replace(load, seconds=CAPACITY_SECONDS))
            load = replace(load, rate=max(1, int(runs["flat out"].qps * args.share)))
        print(
            f"{args.workers} workers, {args.names:,} names, {load.transport.upper()} at "
            f"{load.rate:,} queries/s for {load.seconds:g} s per run, a reload every "
            f"{args.reload_every:g} s (load average {os.getloadavg()[0]:.2f}, "
            f"{os.cpu_count()} CPUs)"
        )
        runs["baseline"] = measure(load)
        runs["with reloads"] = measure_with_reloads(daemon, zone, load, args.reload_every)
        problems = served_problems(daemon.port, zone) + log_alarms(daemon.log())
    return runs, problems


def lag_warnings(runs: dict[str, Measured]) -> list[str]:
    """Runs where dnsperf sent under 99% of the offered queries: the load generator itself
    fell behind (a starved CPU), so that run's server saw less load than the others."""
    return [
        f"{name}: dnsperf sent {run.sent:,} of {run.offered:,} queries; compare with care"
        for name, run in runs.items()
        if run.offered is not None and run.sent < 0.99 * run.offered
    ]


def main() -> int:
    args = _arguments()
    if (missing := missing_prerequisite()) is not None:
        print(missing, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nameserverd-reload-") as scratch:
        try:
            runs, problems = run(args, Path(scratch))
        except (DaemonError, RuntimeError, ValueError) as error:
            print(f"the benchmark stopped: {error}", file=sys.stderr)
            return 1
    print_table(runs)
    for warning in lag_warnings(runs):
        print(f"warning: {warning}")
    for problem in problems:
        print(f"problem: {problem}")
    baseline, reloading = runs["baseline"], runs["with reloads"]
    verdict = reloading.lost_by_server <= baseline.lost_by_server and not problems
    print(
        f"lost with reloads {reloading.lost:,} ({reloading.client_drops:,} dropped by the "
        f"client's own socket), baseline {baseline.lost:,} ({baseline.client_drops:,}): "
        + ("no query lost to reloads" if verdict else "FAILED")
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
