"""NSD and nameserverd side by side in a network namespace of their own, for the speed benchmarks.

``bench.speed`` and ``bench.zone_load`` both start the two servers on one generated zone and
look at their processes (CPU time, memory, CPU affinity); this is that common part. nameserverd
starts through the integration suite's harness (``tests/integration/daemon.py``: readiness is its
READY=1); NSD is started by hand with a configuration that makes it send nothing by itself (no
notify, no transfers, no remote control) and is ready when it answers the zone's SOA.

The namespace has only ``lo``: no packet of a benchmark can leave it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.integration import daemon as harness
from tests.integration.netns import ip, netns_argv, run_in_netns

LOOPBACK = "127.0.0.1"
NSD_PORT = 5301
NAMESERVERD_PORT = 5302
POLL_INTERVAL = 0.02  # seconds between two SOA queries while NSD loads
STOP_TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parent.parent


def prerequisite_problems(commands: tuple[str, ...]) -> list[str]:
    """What keeps a benchmark from running here, each with what to install; empty when nothing.

    The benchmarks install nothing themselves: they say what is missing and stop.
    """
    packages = {"ip": "iproute2", "taskset": "util-linux"}
    problems = [
        f"`{command}` is not on PATH: install it (Debian: apt-get install "
        f"{packages.get(command, command)})"
        for command in commands
        if shutil.which(command) is None
    ]
    try:
        harness.daemon_executable()
    except harness.DaemonError as error:
        problems.append(str(error))
    if os.geteuid() != 0:
        problems.append("root is needed to create the network namespace (run with sudo)")
    return problems


@contextlib.contextmanager
def bench_namespace() -> Iterator[str]:
    """A network namespace with only ``lo`` up (127.0.0.1/8 and ::1), deleted afterwards."""
    name = f"nsbench-{os.getpid()}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        ip("netns", "del", name)


@dataclass(frozen=True)
class Started:
    """A server that answers: its name, its process group, how long it took to get there."""

    name: str
    pgid: int
    seconds: float

    def pids(self) -> list[int]:
        return group_pids(self.pgid)


def group_pids(pgid: int) -> list[int]:
    """Every process of a process group: a server's supervisor or main process and its children
    (each server is started in a session of its own, so the group is exactly the server)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(stat_fields(int(entry.name))[2]) == pgid:
                    pids.append(int(entry.name))
    return sorted(pids)


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from the state on (the command name in parentheses may contain spaces):
    index 0 is the state, 2 the process group, 11 and 12 utime and stime in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User plus system CPU time of each process, in clock ticks; a process that is gone is left
    out."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = stat_fields(pid)
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


@dataclass(frozen=True)
class Memory:
    """Summed over a server's processes. RSS counts pages shared by forked processes once per
    process; PSS divides them among the sharers, so it is the fair total."""

    rss_kib: int
    pss_kib: int


def memory(pids: list[int]) -> Memory:
    """RSS and PSS of ``pids`` from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss += int(value.split()[0])
            elif key == "Pss":
                pss += int(value.split()[0])
    return Memory(rss, pss)


def pin(pids: list[int], cpu: int) -> None:
    """Bind every thread of every process to ``cpu`` (children forked later inherit it)."""
    for pid in pids:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(pid)],
            capture_output=True,
            check=True,
            timeout=10,
        )


def nsd_config(folder: Path, port: int, origin: str, zone: Path) -> Path:
    """One server process on 127.0.0.1, every file NSD writes kept in ``folder``, root kept (the
    namespace is ours), and nothing NSD would send on its own: no notify, no transfers, no
    remote control. Response rate limiting is off: Debian's NSD has it on (200 replies/s per
    /24), which would make a load generator on one address look like an attack."""
    config = folder / "nsd.conf"
    config.write_text(
        "server:\n"
        "  server-count: 1\n"
        f"  ip-address: {LOOPBACK}\n"
        f"  port: {port}\n"
        '  database: ""\n'
        '  username: ""\n'
        '  chroot: ""\n'
        "  verbosity: 0\n"
        "  rrl-ratelimit: 0\n"
        "  rrl-whitelist-ratelimit: 0\n"
        f'  zonesdir: "{folder}"\n'
        f'  zonelistfile: "{folder}/zone.list"\n'
        f'  pidfile: "{folder}/nsd.pid"\n'
        f'  xfrdfile: "{folder}/xfrd.state"\n'
        f'  xfrdir: "{folder}"\n'
        f'  logfile: "{folder}/nsd.log"\n'
        "remote-control:\n"
        "  control-enable: no\n"
        "zone:\n"
        f"  name: {origin}\n"
        f'  zonefile: "{zone}"\n'
    )
    return config


@contextlib.contextmanager
def running_nsd(
    netns: str, folder: Path, origin: str, zone: Path, timeout: float
) -> Iterator[Started]:
    """NSD in the foreground inside ``netns`` on NSD_PORT, until the block ends.

    Ready is when it answers ``origin`` SOA: NSD sends no readiness signal, so this polls every
    POLL_INTERVAL, which is also what makes the start time a measurement.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = nsd_config(folder, NSD_PORT, origin, zone)
    log_path = folder / "nsd.stderr"
    began = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            netns_argv(netns, ["nsd", "-d", "-c", str(config)]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        try:
            run_in_netns(netns, wait_for_soa, proc, NSD_PORT, origin, began + timeout)
        except RuntimeError as error:
            logs = log_path.read_text(errors="replace") + _read(folder / "nsd.log")
            raise RuntimeError(f"{error}\nNSD's output:\n{logs[-4000:]}") from None
        yield Started("NSD", proc.pid, time.monotonic() - began)
    finally:
        stop_group(proc)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_soa(proc: subprocess.Popen[bytes], port: int, origin: str, deadline: float) -> None:
    """Ask 127.0.0.1 for ``origin`` SOA until a NOERROR answer, the process exits, or the
    deadline (RuntimeError for the last two)."""
    query = dns.message.make_query(origin, "SOA")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"NSD exited with status {proc.returncode} before answering")
        with contextlib.suppress(OSError, dns.exception.DNSException):
            reply = dns.query.udp(query, LOOPBACK, port=port, timeout=POLL_INTERVAL)
            if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                return
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"NSD did not answer {origin} SOA in time")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group a server was started in, SIGKILL what is left after
    STOP_TIMEOUT."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def running_nameserverd(
    netns: str, folder: Path, origin: str, zone: Path, timeout: float, **server: object
) -> Iterator[Started]:
    """nameserverd on ``::`` (dual-stack, so IPv4 replies go through pktinfo as in production),
    NAMESERVERD_PORT, one worker unless ``server`` says otherwise, until the block ends.

    Started, awaited (READY=1) and stopped by the integration harness, whose READY_TIMEOUT is
    raised to ``timeout`` for this start: a zone of a million records takes longer to load
    than the suite's small zones.
    """
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"workers": 1, **server}
    config = harness.write_config(
        folder / "nameserverd.yaml",
        port=NAMESERVERD_PORT,
        ipv6_only=False,
        zones={origin: zone},
        **settings,
    )
    began = time.monotonic()
    with (
        mock.patch.object(harness, "READY_TIMEOUT", timeout),
        harness.running_daemon(netns, config, folder, NAMESERVERD_PORT) as daemon,
    ):
        yield Started("nameserverd", daemon.proc.pid, time.monotonic() - began)


VERSION_ARGV = {"nsd": ["nsd", "-v"], "dnsperf": ["dnsperf", "-h"]}  # they have no --version


def versions(programs: tuple[str, ...]) -> list[str]:
    """The exact versions compared: each of ``programs``' own word and, where dpkg knows it,
    the Debian package version; nameserverd's version and the commit of this tree."""
    lines = []
    for command in programs:
        said = _output(VERSION_ARGV[command])
        own = next((line for line in said.splitlines() if "version" in line.lower()), "?")
        package = _output(["dpkg-query", "-W", "-f", "${Version}", command]) or "?"
        lines.append(f"{command}: {own.strip()} (Debian package {package})")
    daemon = _output([str(harness.daemon_executable()), "--version"]).strip()
    commit = _output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip() or "?"
    if _output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "nameserver"]):
        commit += " with uncommitted changes in nameserver/"  # an editable install runs them
    lines.append(f"nameserverd: {daemon} (commit {commit}), Python {sys.version.split()[0]}")
    return lines


def _output(argv: list[str]) -> str:
    """stdout and stderr of a short command (nsd and dnsperf print their versions on stderr),
    or "" when it cannot run or fails (dpkg without the package, git outside a checkout)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return done.stdout + done.stderr if done.returncode == 0 else ""


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table with aligned columns, readable as text and pasteable as Markdown."""
    table = [header, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = []
    for index, row in enumerate(table):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)
