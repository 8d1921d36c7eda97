"""How long nameserverd takes to load a zone and how much memory it then holds, next to NSD.

Issue 5's targets for a zone of a million records: answering within 30 s of a cold start and
within 5 s when the zone is unchanged since the last run (the on-disk compiled-zone cache,
``server.cache_dir``), with at most 600 MB of RSS. Run from the repository root, as root::

    .venv/bin/python -m bench.zone_load [--records N [N ...]] [--timeout S]

It needs ``nsd`` (Debian package ``nsd``) and ``ip``, and installs nothing: without them, or
without root, it says what is missing and exits 2.

For each size it writes the ``bench.zonegen`` zone and, in a network namespace of its own,
starts each server on it in turn and measures the time from starting the process to the first
answer: for nameserverd its READY=1 (sent once the zone is loaded and the worker forked), for
NSD the first answer to the zone's SOA (polled every 20 ms). Then it reads the memory of all
the server's processes: RSS, and PSS, which counts a page shared by the supervisor and its
forked worker once instead of twice. nameserverd starts twice per size with one cache folder:
"cold" (empty) and "unchanged" (the same zone file again). Until the daemon accepts
``server.cache_dir`` (checked once with ``--check``), the second start is left out and its
row says "not available yet". Prints a Markdown table with the ratios to NSD; exit status 1
when a server did not start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.servers import (
    Memory,
    Started,
    bench_namespace,
    markdown_table,
    memory,
    prerequisite_problems,
    running_nameserverd,
    running_nsd,
    versions,
)
from bench.zonegen import ORIGIN, write_zone
from tests.integration.daemon import DaemonError, run_check, write_config
from tests.integration.netns import CommandError

COMMANDS = ("nsd", "ip")
SIZES = (10_000, 100_000, 1_000_000)
CACHE_KEY = "cache_dir"
SMALLEST_ZONE = 100  # records, for asking the daemon whether it knows CACHE_KEY
# The targets for a million records.
TARGET_RECORDS = 1_000_000
TARGETS = {"cold": "<= 30 s", "unchanged": "<= 5 s"}
TARGET_RSS_MB = 600


@dataclass(frozen=True)
class Load:
    """One start of one server on one zone size: seconds to the first answer, then memory."""

    records: int
    server: str
    seconds: float
    memory: Memory


def cache_supported(folder: Path) -> bool:
    """Whether ``nameserverd --check`` accepts ``server.cache_dir``. Another key or a broken zone
    is an error of the benchmark, not an answer: it raises RuntimeError."""
    zone = empty_folder(folder) / "probe.zone"
    write_zone(zone, SMALLEST_ZONE)
    config = write_config(
        folder / "probe.yaml",
        port=53,
        ipv6_only=False,
        zones={ORIGIN: zone},
        **{CACHE_KEY: str(empty_folder(folder / "cache"))},
    )
    done = run_check(config)
    if done.returncode == 0:
        return True
    said = done.stdout + done.stderr
    if CACHE_KEY in said and "unknown key" in said:
        return False
    raise RuntimeError(f"nameserverd --check failed on the probe configuration:\n{said}")


def empty_folder(path: Path) -> Path:
    """A new folder (with its parents): the daemon wants the cache folder to exist already."""
    path.mkdir(parents=True)
    return path


def measured(records: int, label: str, started: Started) -> Load:
    return Load(records, label, started.seconds, memory(started.pids()))


def load_size(netns: str, folder: Path, records: int, timeout: float, cache: bool) -> list[Load]:
    """NSD, then nameserverd cold, then (with the cache) nameserverd on the unchanged zone."""
    folder.mkdir(parents=True, exist_ok=True)
    zone = folder / f"{records}.zone"
    write_zone(zone, records)
    loads = []
    with running_nsd(netns, folder / "nsd", ORIGIN, zone, timeout) as nsd:
        loads.append(measured(records, "NSD", nsd))
    settings = {CACHE_KEY: str(empty_folder(folder / "cache"))} if cache else {}
    starts = ("cold", "unchanged") if cache else ("cold",)
    for start in starts:
        with running_nameserverd(
            netns, folder / "nameserverd", ORIGIN, zone, timeout, **settings
        ) as daemon:
            loads.append(measured(records, f"nameserverd {start}", daemon))
    return loads


HEADER = (
    "records",
    "server",
    "start to answering s",
    "x NSD",
    "RSS MB",
    "PSS MB",
    "PSS x NSD",
    "target (1M)",
)


def table_rows(loads: list[Load], cache: bool) -> list[tuple[str, ...]]:
    """One row per start, ratios to the NSD row of the same size; a row saying "not available
    yet" for the unchanged start where the daemon has no cache."""
    nsd = {load.records: load for load in loads if load.server == "NSD"}
    rows = []
    for load in loads:
        base = nsd[load.records]
        start = load.server.removeprefix("nameserverd ")
        target = ""
        if load.records == TARGET_RECORDS and start in TARGETS:
            target = f"{TARGETS[start]}, RSS <= {TARGET_RSS_MB} MB"
        rows.append(
            (
                f"{load.records:,}",
                load.server,
                f"{load.seconds:.2f}",
                f"{load.seconds / base.seconds:.1f}",
                f"{load.memory.rss_kib / 1024:,.0f}",
                f"{load.memory.pss_kib / 1024:,.0f}",
                f"{load.memory.pss_kib / base.memory.pss_kib:.1f}",
                target,
            )
        )
        if load.server == "nameserverd cold" and not cache:
            rows.append(
                (f"{load.records:,}", "nameserverd unchanged", "not available yet")
                + ("",) * (len(HEADER) - 3)
            )
    return rows


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, nargs="+", default=list(SIZES), help="zone sizes, 10k 100k 1M"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per start, 600")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    if problems := prerequisite_problems(COMMANDS):
        print("\n".join(problems), file=sys.stderr)
        return 2
    loads: list[Load] = []
    with tempfile.TemporaryDirectory(prefix="nameserverd-zone-load-") as scratch:
        folder = Path(scratch)
        try:
            cache = cache_supported(folder / "probe")
            if not cache:
                print(f"nameserverd does not know server.{CACHE_KEY} yet: cold starts only")
            with bench_namespace() as netns:
                for records in args.records:
                    loads += load_size(netns, folder / str(records), records, args.timeout, cache)
                    print(f"{records:,} records done", flush=True)
        except (DaemonError, RuntimeError, CommandError) as error:
            print(f"the benchmark stopped: {error}", file=sys.stderr)
            return 1
    print()
    print(
        "From starting the process to answering (nameserverd: READY=1 with its worker forked; "
        "NSD: first SOA answer, polled every 20 ms). Memory of all the server's processes "
        "right then; PSS counts pages shared after fork once. nameserverd: 1 worker; NSD: "
        "server-count 1."
    )
    print()
    print(markdown_table(HEADER, table_rows(loads, cache)))
    print()
    print("\n".join(versions(("nsd",))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
