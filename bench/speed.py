"""Queries per second of nameserverd next to NSD's, on the same zone, the same CPU, the same load.

Issue 5's targets are ratios to NSD (mixed hits at least 0.9x, random nonexistent names at least
0.3x, one worker each), so this measures both servers in turn under identical conditions. Run
from the repository root, as root::

    .venv/bin/python -m bench.speed [--records N] [--rounds R] [--seconds S] [--outstanding Q]

It needs ``dnsperf`` and ``nsd`` (Debian packages of those names), ``ip`` and ``taskset``, and
installs nothing: without one of them, or without root, it says what is missing and exits 2.

In a network namespace of its own (only ``lo``), it starts NSD (one server process, on
127.0.0.1) and nameserverd (one worker, on ``::`` dual-stack, so IPv4 replies carry their source
through pktinfo as in production) on the same generated zone (``bench.zonegen``), pins every
process of both to one CPU and dnsperf to another, and runs dnsperf against 127.0.0.1 for each
load shape and round, alternating the servers (NSD, nameserverd, NSD, nameserverd, ...) so that
a slow phase of a shared machine hits both. Per run it records dnsperf's QPS, average latency and
lost queries, and the CPU share the server's processes used (utime + stime from /proc). It prints
every run, then a table of medians with nameserverd's ratio to NSD. Exit status 1 when a server
or dnsperf failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.reload_under_load import Measured, parse_dnsperf
from bench.servers import (
    LOOPBACK,
    NAMESERVERD_PORT,
    NSD_PORT,
    Started,
    bench_namespace,
    cpu_ticks,
    markdown_table,
    pin,
    prerequisite_problems,
    running_nameserverd,
    running_nsd,
    versions,
)
from bench.zonegen import MIX_QUERIES, NONEXISTENT_QUERIES, BenchFiles, write_bench_files
from tests.integration.daemon import DaemonError
from tests.integration.netns import CommandError, netns_argv

COMMANDS = ("dnsperf", "nsd", "ip", "taskset")
# The targets, nameserverd's QPS over NSD's, by load shape.
TARGETS = {"mixed": 0.9, "nonexistent": 0.3}
QUERY_TIMEOUT = 1.0  # seconds; dnsperf counts a query unanswered after this as lost
START_TIMEOUT = 120.0  # seconds for a server to load the zone and answer
DNSPERF_GRACE = 30.0  # seconds past its own limit before a dnsperf run is killed
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("NSD", "nameserverd")
RECORDS = 22_111  # 10,000 hosts: the zone size the batched UDP loop's measurements used
PORTS = {"NSD": NSD_PORT, "nameserverd": NAMESERVERD_PORT}


@dataclass(frozen=True)
class Run:
    """One dnsperf run against one server: what dnsperf saw and what the server's CPU did."""

    shape: str
    server: str
    measured: Measured
    cpu_percent: float


@dataclass(frozen=True)
class Dnsperf:
    """How dnsperf runs: pinned to ``cpu``, one client, at most ``outstanding`` queries in
    flight, for ``seconds`` or, with ``passes``, until it has gone through the file that many
    times, whichever comes first."""

    cpu: int
    outstanding: int
    seconds: float
    passes: int | None = None

    def argv(self, netns: str, port: int, queries: Path) -> list[str]:
        """dnsperf flat out to 127.0.0.1 inside ``netns``."""
        argv = ["taskset", "-c", str(self.cpu), "dnsperf", "-s", LOOPBACK, "-p", str(port)]
        argv += ["-d", str(queries), "-l", f"{self.seconds:g}", "-t", f"{QUERY_TIMEOUT:g}"]
        argv += ["-q", str(self.outstanding)]
        if self.passes is not None:
            argv += ["-n", str(self.passes)]
        return netns_argv(netns, argv)


def cpu_percent(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """The share of one CPU that the processes used between two ``cpu_ticks`` samples; a process
    born in between counts from zero, one that died in between is lost (neither happens to a
    healthy server during a run)."""
    used = sum(ticks - before.get(pid, 0) for pid, ticks in after.items())
    return 100.0 * used / CLOCK_TICKS / seconds


def measure(netns: str, server: Started, dnsperf: Dnsperf, shape: str, queries: Path) -> Run:
    """One dnsperf run against ``server``, with its CPU time sampled around it.

    dnsperf writes to a file, not a pipe (as in ``bench.reload_under_load``): a line per lost
    query into a pipe nobody reads would stall it.
    """
    argv = dnsperf.argv(netns, PORTS[server.name], queries)
    with tempfile.TemporaryFile() as output:
        before, began = cpu_ticks(server.pids()), time.monotonic()
        done = subprocess.run(
            argv, stdout=output, stderr=subprocess.STDOUT, timeout=dnsperf.seconds + DNSPERF_GRACE
        )
        after, took = cpu_ticks(server.pids()), time.monotonic() - began
        output.seek(0)
        text = output.read().decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"dnsperf exited with status {done.returncode}:\n{text}")
    return Run(shape, server.name, parse_dnsperf(text), cpu_percent(before, after, took))


def run_all(netns: str, files: BenchFiles, args: argparse.Namespace, folder: Path) -> list[Run]:
    """Both servers up at once (the idle one costs nothing), pinned; each goes once through the
    mixed queries unmeasured (an answer cache is then as warm as a server's that has been up a
    while; NSD has none), then every run in order: per round and load shape, NSD then
    nameserverd."""
    shapes = {"mixed": files.mix, "nonexistent": files.nonexistent}
    origin = files.shape.origin
    runs: list[Run] = []
    with (
        running_nsd(netns, folder / "nsd", origin, files.zone, START_TIMEOUT) as nsd,
        running_nameserverd(
            netns, folder / "nameserverd", origin, files.zone, START_TIMEOUT, **_settings(args)
        ) as nameserverd,
    ):
        servers = {"NSD": nsd, "nameserverd": nameserverd}
        for server in servers.values():
            pin(server.pids(), args.server_cpu)
        if args.warmup > 0:
            warmup = Dnsperf(args.dnsperf_cpu, args.outstanding, args.warmup, passes=1)
            for name in SERVERS:
                run = measure(netns, servers[name], warmup, "mixed", files.mix)
                print(f"warm-up: {run_line(run)}", flush=True)
        dnsperf = Dnsperf(args.dnsperf_cpu, args.outstanding, args.seconds)
        for round_number in range(1, args.rounds + 1):
            for shape, queries in shapes.items():
                for name in SERVERS:
                    run = measure(netns, servers[name], dnsperf, shape, queries)
                    print(f"round {round_number}: {run_line(run)}", flush=True)
                    runs.append(run)
    return runs


def _settings(args: argparse.Namespace) -> dict[str, int]:
    """nameserverd's ``server:`` settings that differ from its defaults for this run."""
    return {} if args.udp_batch is None else {"udp_batch": args.udp_batch}


def run_line(run: Run) -> str:
    measured = run.measured
    return (
        f"{run.shape:<11} {run.server:<11} {measured.qps:>10,.0f} q/s  "
        f"{measured.latency_avg * 1000:6.3f} ms  lost {measured.lost:,} of {measured.sent:,}  "
        f"server CPU {run.cpu_percent:5.1f}%"
    )


@dataclass(frozen=True)
class Summary:
    """The medians of one server's runs under one load shape."""

    qps: float
    latency_ms: float
    lost: float
    cpu_percent: float
    per_cpu_second: float  # queries answered per second of server CPU


def summarize(runs: list[Run]) -> dict[tuple[str, str], Summary]:
    """Medians per (load shape, server)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.shape, run.server), []).append(run)
    return {
        key: Summary(
            qps=statistics.median(run.measured.qps for run in group),
            latency_ms=statistics.median(run.measured.latency_avg * 1000 for run in group),
            lost=statistics.median(run.measured.lost for run in group),
            cpu_percent=statistics.median(run.cpu_percent for run in group),
            per_cpu_second=statistics.median(
                run.measured.qps * 100 / run.cpu_percent if run.cpu_percent else 0.0
                for run in group
            ),
        )
        for key, group in groups.items()
    }


HEADER = (
    "load",
    "server",
    "QPS",
    "avg latency ms",
    "lost",
    "server CPU %",
    "queries per CPU s",
    "QPS / NSD",
    "target",
)


def table_rows(summaries: dict[tuple[str, str], Summary]) -> list[tuple[str, ...]]:
    """One row per load shape and server; nameserverd's carries its ratio to NSD and the
    issue's target for that ratio."""
    rows = []
    for shape, target in TARGETS.items():
        nsd_qps = summaries[shape, "NSD"].qps
        for server in SERVERS:
            summary = summaries[shape, server]
            ours = server == "nameserverd"
            rows.append(
                (
                    shape,
                    server,
                    f"{summary.qps:,.0f}",
                    f"{summary.latency_ms:.3f}",
                    f"{summary.lost:,.0f}",
                    f"{summary.cpu_percent:.0f}",
                    f"{summary.per_cpu_second:,.0f}",
                    f"{summary.qps / nsd_qps:.2f}" if ours and nsd_qps else "1.00",
                    f">= {target:g}" if ours else "",
                )
            )
    return rows


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=RECORDS, help=f"zone size, {RECORDS:,}")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server and load, 2")
    parser.add_argument("--seconds", type=float, default=15, help="each run's length, 15")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q, default 100")
    parser.add_argument(
        "--warmup", type=float, default=120, help="at most, for one unmeasured pass; 0: none"
    )
    parser.add_argument("--mix-queries", type=int, default=MIX_QUERIES, help="lines, 100,000")
    parser.add_argument(
        "--nonexistent-queries", type=int, default=NONEXISTENT_QUERIES, help="lines, 1,000,000"
    )
    parser.add_argument("--server-cpu", type=int, default=1, help="both servers' CPU, default 1")
    parser.add_argument("--dnsperf-cpu", type=int, default=0, help="dnsperf's CPU, default 0")
    parser.add_argument(
        "--udp-batch", type=int, help="nameserverd's server.udp_batch; default: its own"
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if problems := prerequisite_problems(COMMANDS):
        print("\n".join(problems), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nameserverd-speed-") as scratch:
        folder = Path(scratch)
        files = write_bench_files(
            folder,
            args.records,
            mix=args.mix_queries,
            nonexistent=args.nonexistent_queries,
        )
        print(
            f"{files.shape.records:,} records in {files.shape.origin}; a warm-up pass of at "
            f"most {args.warmup:g} s, then {args.rounds} rounds x {args.seconds:g} s per "
            f"server and load; dnsperf -q {args.outstanding} on CPU "
            f"{args.dnsperf_cpu}, both servers on CPU {args.server_cpu}; nameserverd "
            f"{_settings(args) or 'with its defaults'}; load average "
            f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs",
            flush=True,
        )
        try:
            with bench_namespace() as netns:
                runs = run_all(netns, files, args, folder)
        except (DaemonError, RuntimeError, CommandError, subprocess.SubprocessError) as error:
            print(f"the benchmark stopped: {error}", file=sys.stderr)
            return 1
    print()
    print(
        "nameserverd: 1 worker on `::` dual-stack (replies to IPv4 through pktinfo); "
        "NSD: server-count 1 on 127.0.0.1; dnsperf to 127.0.0.1. Medians of "
        f"{args.rounds} runs of {args.seconds:g} s; mixed = 70% A/AAAA hits, 10% MX/TXT, "
        f"10% NXDOMAIN, 10% NODATA; nonexistent = {args.nonexistent_queries:,} different "
        "random names."
    )
    print()
    print(markdown_table(HEADER, table_rows(summarize(runs))))
    print()
    print("\n".join(versions(("nsd", "dnsperf"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
