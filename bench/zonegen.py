"""The speed benchmarks' zone and query files, generated so every server reads the same bytes.

``bench.speed`` and ``bench.zone_load`` compare nameserverd with NSD, which only means something
when both load one zone file and answer one query file. The zone has exactly the requested
number of records (what ``nameserverd --check`` counts: one per rdata), so "1M records" is the
same size for everyone. Everything is derived from the index of a name or from a seeded
generator: the same arguments give the same files on every machine.

Run from the repository root to look at the files::

    .venv/bin/python -m bench.zonegen OUTDIR [--records N] [--origin NAME] [--seed X]
"""

from __future__ import annotations

import argparse
import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ORIGIN = "bench.test."
SERIAL = 2026120100
SEED = 5
MIX_QUERIES = 100_000
NONEXISTENT_QUERIES = 1_000_000
# The apex: SOA, two NS and their A and AAAA glue.
APEX_RECORDS = 7
# Two delegated children, each an NS and the A glue of its name server.
DELEGATIONS = ("sub1", "sub2")
DELEGATION_RECORDS = 2 * len(DELEGATIONS)
MAIL_EVERY = 10  # every tenth host also has MX and TXT
ALIAS_EVERY = 100  # every hundredth host also has an alias (a CNAME to it)
# The query mix of the issue (and of /work/shared/reference/batched-udp-io.md), in tenths.
MIX_TENTHS = {"address": 7, "mail": 1, "nxdomain": 1, "nodata": 1}
# Types no host has, asked of hosts that exist: NODATA. MX/TXT are only absent on 9 in 10.
NODATA_TYPES = ("SRV", "CAA", "NAPTR", "SSHFP")
# Label prefixes the zone never uses below the apex, so a name with one cannot exist.
NXDOMAIN_PREFIX = "nx"
NONEXISTENT_PREFIX = "q"
RANDOM_LABEL_BYTES = 5  # 8 base32 characters


@dataclass(frozen=True)
class ZoneShape:
    """What was written: the origin, the record count, and how many hosts have all of their
    records (the last host may have been cut short to land on the exact count; queries never
    ask about it, so each query's expected outcome holds)."""

    origin: str
    records: int
    hosts: int

    def host(self, index: int) -> str:
        return f"h{index}.{self.origin}"


def host_records(index: int) -> list[str]:
    """A host's records as zone-file lines, relative to the origin."""
    name = f"h{index}"
    lines = [
        f"{name} A 10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
        f"{name} AAAA 2001:db8::{index >> 16:x}:{index & 0xFFFF:x}",
    ]
    if index % MAIL_EVERY == 0:
        lines += [f"{name} MX 10 {name}", f'{name} TXT "v=spf1 ip4:10.0.0.0/8 -all" "host {index}"']
    if index % ALIAS_EVERY == 0:
        lines.append(f"alias{index} CNAME {name}")
    return lines


def fixed_records(origin: str) -> list[str]:
    """The apex and the delegations, which every size has."""
    lines = [
        f"$ORIGIN {origin}",
        "$TTL 3600",
        f"@ SOA ns1 hostmaster {SERIAL} 7200 3600 1209600 300",
        "@ NS ns1",
        "@ NS ns2",
        "ns1 A 192.0.2.1",
        "ns1 AAAA 2001:db8:53::1",
        "ns2 A 192.0.2.2",
        "ns2 AAAA 2001:db8:53::2",
    ]
    for number, child in enumerate(DELEGATIONS, 1):
        lines += [f"{child} NS ns.{child}", f"ns.{child} A 198.51.100.{number}"]
    return lines


def zone_lines(origin: str, records: int) -> Iterator[str]:
    """The zone file's lines, exactly ``records`` records in all."""
    floor = APEX_RECORDS + DELEGATION_RECORDS
    if records < floor:
        raise ValueError(f"a zone has at least {floor} records, not {records}")
    yield from fixed_records(origin)
    left = records - floor
    index = 0
    while left > 0:
        lines = host_records(index)[:left]
        yield from lines
        left -= len(lines)
        index += 1


def complete_hosts(records: int) -> int:
    """How many hosts ``zone_lines`` writes in full for ``records`` records."""
    left = records - APEX_RECORDS - DELEGATION_RECORDS
    index = 0
    while left >= (size := len(host_records(index))):
        left -= size
        index += 1
    return index


def write_zone(path: Path, records: int, origin: str = ORIGIN) -> ZoneShape:
    """Write the zone file and say what is in it."""
    with path.open("w") as out:
        for line in zone_lines(origin, records):
            out.write(line + "\n")
    return ZoneShape(origin, records, complete_hosts(records))


def mix_queries(shape: ZoneShape, count: int, seed: int = SEED) -> list[str]:
    """dnsperf lines for the realistic mix: 70% A/AAAA of existing hosts, 10% MX/TXT of hosts
    that have them, 10% NXDOMAIN, 10% NODATA, in a seeded random order.

    Hosts are drawn at random (with repeats, as real traffic repeats), the missing names are
    all different (nobody asks the same typo twice in a row).
    """
    rng = random.Random(seed)
    mailers = range(0, shape.hosts, MAIL_EVERY)
    if not mailers:
        raise ValueError(f"a zone of {shape.records} records has no host with MX and TXT")
    counts = {kind: count * tenths // 10 for kind, tenths in MIX_TENTHS.items()}
    counts["address"] += count - sum(counts.values())
    missing = iter(random_labels(rng, counts["nxdomain"]))
    lines: list[str] = []
    for _ in range(counts["address"]):
        lines.append(f"{shape.host(rng.randrange(shape.hosts))} {rng.choice(('A', 'AAAA'))}")
    for _ in range(counts["mail"]):
        lines.append(f"{shape.host(rng.choice(mailers))} {rng.choice(('MX', 'TXT'))}")
    for _ in range(counts["nxdomain"]):
        lines.append(f"{NXDOMAIN_PREFIX}{next(missing)}.{shape.origin} {rng.choice(('A', 'AAAA'))}")
    for _ in range(counts["nodata"]):
        lines.append(f"{shape.host(rng.randrange(shape.hosts))} {rng.choice(NODATA_TYPES)}")
    rng.shuffle(lines)
    return lines


def nonexistent_queries(shape: ZoneShape, count: int, seed: int = SEED) -> list[str]:
    """dnsperf lines asking A of ``count`` different names that do not exist: no answer cache
    keyed by name can help, every query is a miss that needs the denial built."""
    rng = random.Random(seed + 1)
    return [f"{NONEXISTENT_PREFIX}{label}.{shape.origin} A" for label in random_labels(rng, count)]


def random_labels(rng: random.Random, count: int) -> list[str]:
    """``count`` different random labels (sampled without replacement, so unique by design)."""
    numbers = rng.sample(range(1 << 8 * RANDOM_LABEL_BYTES), count)
    return [base64.b32encode(n.to_bytes(RANDOM_LABEL_BYTES)).decode().lower() for n in numbers]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class BenchFiles:
    """One size's zone file and its two query files."""

    shape: ZoneShape
    zone: Path
    mix: Path
    nonexistent: Path


def write_bench_files(
    folder: Path,
    records: int,
    *,
    origin: str = ORIGIN,
    seed: int = SEED,
    mix: int = MIX_QUERIES,
    nonexistent: int = NONEXISTENT_QUERIES,
) -> BenchFiles:
    """The zone and both query files in ``folder``, named after the record count."""
    folder.mkdir(parents=True, exist_ok=True)
    zone = folder / f"{origin.rstrip('.')}-{records}.zone"
    shape = write_zone(zone, records, origin)
    return BenchFiles(
        shape,
        zone,
        write_lines(folder / f"mix-{records}.txt", mix_queries(shape, mix, seed)),
        write_lines(
            folder / f"nonexistent-{records}.txt", nonexistent_queries(shape, nonexistent, seed)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--records", type=int, default=10_000, help="default 10,000")
    parser.add_argument("--origin", default=ORIGIN, help=f"default {ORIGIN}")
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    args = parser.parse_args()
    files = write_bench_files(args.outdir, args.records, origin=args.origin, seed=args.seed)
    print(f"{files.zone}: {files.shape.records:,} records, {files.shape.hosts:,} complete hosts")
    print(f"{files.mix}\n{files.nonexistent}")


if __name__ == "__main__":
    main()
