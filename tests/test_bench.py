"""The speed benchmarks' pure parts, so that CI notices when they rot without running dnsperf.

The zone generator is checked against the daemon itself (``--check`` must count exactly the
records asked for) and the query files against the zone (each query's outcome is what its
share of the mix says). The tables are checked on made-up measurements.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone
import pytest

# The benchmarks are run as modules from the repository root (``python -m bench.speed``) and
# import ``bench`` and ``tests`` from there; the pytest script does not put the root on the path.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import speed, zone_load  # noqa: E402
from bench.reload_under_load import Measured, parse_dnsperf  # noqa: E402
from bench.servers import Memory, markdown_table, nsd_config, stat_fields  # noqa: E402
from bench.zonegen import (  # noqa: E402
    APEX_RECORDS,
    DELEGATION_RECORDS,
    ORIGIN,
    ZoneShape,
    mix_queries,
    nonexistent_queries,
    write_bench_files,
    write_zone,
    zone_lines,
)
from nameserver.config import load_config  # noqa: E402
from tests.integration.daemon import run_check, write_config  # noqa: E402

DNSPERF_OUTPUT = """\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5302 -d mix.txt -l 15 -t 1 -q 100
[Status] Sending queries (to 127.0.0.1:5302)
[Timeout] Query timed out: msg id 8883
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         280776
  Queries completed:    280676 (99.96%)
  Queries lost:         100 (0.04%)

  Response codes:       NOERROR 252700 (90.03%), NXDOMAIN 27976 (9.97%)
  Average packet size:  request 34, response 164
  Run time (s):         3.000130
  Queries per second:   93582.579354

  Average Latency (s):  0.000902 (min 0.000013, max 0.007872)
  Latency StdDev (s):   0.000425

"""


def test_dnsperf_statistics_are_read() -> None:
    measured = parse_dnsperf(DNSPERF_OUTPUT)
    assert (measured.sent, measured.completed, measured.lost) == (280776, 280676, 100)
    assert measured.qps == pytest.approx(93582.579354)
    assert measured.latency_avg == pytest.approx(0.000902)
    assert measured.latency_max == pytest.approx(0.007872)


def test_dnsperf_output_without_statistics_is_an_error() -> None:
    with pytest.raises(ValueError, match="Queries sent"):
        parse_dnsperf("[Status] Testing complete (time limit)\n")


@pytest.mark.parametrize("records", [APEX_RECORDS + DELEGATION_RECORDS, 12, 15, 17, 18, 1000])
def test_zone_has_exactly_the_records_asked_for(records: int) -> None:
    zone = dns.zone.from_text("\n".join(zone_lines(ORIGIN, records)), ORIGIN, relativize=False)
    assert sum(len(rdataset) for _, rdataset in zone.iterate_rdatasets()) == records


def test_zone_below_its_fixed_part_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        list(zone_lines(ORIGIN, APEX_RECORDS + DELEGATION_RECORDS - 1))


def test_nameserverd_accepts_the_zone_and_counts_the_same(tmp_path: Path) -> None:
    shape = write_zone(tmp_path / "bench.zone", 2345)
    config = write_config(
        tmp_path / "nameserverd.yaml",
        port=5300,
        ipv6_only=False,
        zones={ORIGIN: tmp_path / "bench.zone"},
    )
    done = run_check(config)
    assert done.returncode == 0, done.stderr
    assert f"{shape.records} records" in done.stdout


@pytest.mark.skipif(shutil.which("nsd-checkzone") is None, reason="NSD is not installed")
def test_nsd_accepts_the_zone(tmp_path: Path) -> None:
    write_zone(tmp_path / "bench.zone", 2345)
    argv = ["nsd-checkzone", ORIGIN, str(tmp_path / "bench.zone")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("nsd-checkconf") is None, reason="NSD is not installed")
def test_nsd_accepts_its_configuration(tmp_path: Path) -> None:
    config = nsd_config(tmp_path, 5301, ORIGIN, tmp_path / "bench.zone")
    done = subprocess.run(
        ["nsd-checkconf", str(config)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def outcome(zone: dns.zone.Zone, line: str) -> str:
    """What the zone answers to a dnsperf line: hit, mail hit, NODATA or NXDOMAIN."""
    name, rdtype = line.split()
    node = zone.get_node(dns.name.from_text(name))
    if node is None:
        return "nxdomain"
    if node.get_rdataset(zone.rdclass, dns.rdatatype.from_text(rdtype)) is None:
        return "nodata"
    return "mail" if rdtype in ("MX", "TXT") else "address"


@pytest.fixture(scope="module")
def bench_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dns.zone.Zone, list[str]]:
    files = write_bench_files(tmp_path_factory.mktemp("bench"), 5000, mix=2000, nonexistent=3000)
    zone = dns.zone.from_file(str(files.zone), ORIGIN, relativize=False)
    return zone, [files.mix.read_text(), files.nonexistent.read_text()]


def test_query_mix_has_the_issues_proportions(
    bench_files: tuple[dns.zone.Zone, list[str]],
) -> None:
    zone, (mix, _) = bench_files
    outcomes = [outcome(zone, line) for line in mix.splitlines()]
    counts = {kind: outcomes.count(kind) for kind in set(outcomes)}
    assert counts == {"address": 1400, "mail": 200, "nxdomain": 200, "nodata": 200}


def test_nonexistent_names_are_all_different_and_missing(
    bench_files: tuple[dns.zone.Zone, list[str]],
) -> None:
    zone, (_, nonexistent) = bench_files
    lines = nonexistent.splitlines()
    assert len(lines) == len(set(lines)) == 3000
    assert {outcome(zone, line) for line in lines} == {"nxdomain"}


def test_query_files_are_the_same_for_the_same_seed() -> None:
    shape = ZoneShape(ORIGIN, 1000, 400)
    assert mix_queries(shape, 500, seed=3) == mix_queries(shape, 500, seed=3)
    assert mix_queries(shape, 500, seed=3) != mix_queries(shape, 500, seed=4)
    assert nonexistent_queries(shape, 500, seed=3) == nonexistent_queries(shape, 500, seed=3)


def test_stat_fields_of_a_live_process_give_its_group_and_cpu_time() -> None:
    fields = stat_fields(os.getpid())
    assert int(fields[2]) == os.getpgrp()
    assert int(fields[11]) >= 0 and int(fields[12]) >= 0


def test_cpu_share_counts_processes_born_during_the_run() -> None:
    ticks = speed.CLOCK_TICKS
    before = {10: 0, 11: ticks}
    after = {10: ticks // 2, 11: ticks, 12: ticks // 2}
    assert speed.cpu_percent(before, after, 1.0) == pytest.approx(100.0, abs=1.0)


def run(shape: str, server: str, qps: float, cpu: float) -> speed.Run:
    measured = Measured(
        sent=100, completed=99, lost=1, rcodes="", qps=qps, latency_avg=0.001, latency_max=0.01
    )
    return speed.Run(shape, server, measured, cpu)


def test_speed_table_has_medians_and_the_ratio_to_nsd() -> None:
    runs = [
        run(shape, server, qps, 50.0)
        for shape in ("mixed", "nonexistent")
        for server, qps in (("NSD", 100_000.0), ("nameserverd", 50_000.0))
    ]
    runs += [run("mixed", "nameserverd", 90_000.0, 60.0), run("mixed", "nameserverd", 95_000.0, 70)]
    rows = speed.table_rows(speed.summarize(runs))
    assert rows[1][:4] == ("mixed", "nameserverd", "90,000", "1.000")
    assert rows[1][5:] == ("60", "135,714", "0.90", ">= 0.9")
    assert rows[3][7:] == ("0.50", ">= 0.3")
    assert len(markdown_table(speed.HEADER, rows).splitlines()) == 2 + len(rows)


def load(records: int, server: str, seconds: float, pss_mib: int) -> zone_load.Load:
    return zone_load.Load(records, server, seconds, Memory(2 * pss_mib * 1024, pss_mib * 1024))


def test_zone_load_table_says_when_the_cache_is_not_available_yet() -> None:
    loads = [load(1_000_000, "NSD", 2.0, 100), load(1_000_000, "nameserverd cold", 20.0, 500)]
    rows = zone_load.table_rows(loads, cache=False)
    assert rows[1][1:4] == ("nameserverd cold", "20.00", "10.0")
    assert rows[1][-2:] == ("5.0", "<= 30 s, RSS <= 600 MB")
    assert rows[2][1:3] == ("nameserverd unchanged", "not available yet")


def test_zone_load_table_with_the_cache_has_both_starts() -> None:
    loads = [
        load(10_000, "NSD", 0.5, 40),
        load(10_000, "nameserverd cold", 2.0, 30),
        load(10_000, "nameserverd unchanged", 0.5, 30),
    ]
    rows = zone_load.table_rows(loads, cache=True)
    assert [row[1] for row in rows] == ["NSD", "nameserverd cold", "nameserverd unchanged"]
    assert rows[2][3] == "1.0"
    assert rows[2][-1] == ""


def test_zone_load_asks_the_daemon_about_the_cache_without_failing(tmp_path: Path) -> None:
    """Whichever the answer, the probe configuration itself must stay valid."""
    assert zone_load.cache_supported(tmp_path / "probe") in (True, False)


def test_dnsperf_runs_pinned_inside_the_namespace_and_stops_after_one_pass_for_warm_up() -> None:
    measured = speed.Dnsperf(cpu=0, outstanding=100, seconds=15).argv("ns", 5301, Path("q"))
    assert measured[:6] == ["ip", "netns", "exec", "ns", "taskset", "-c"]
    assert "-n" not in measured
    warmup = speed.Dnsperf(cpu=0, outstanding=100, seconds=120, passes=1).argv(
        "ns", 5301, Path("q")
    )
    assert warmup[-2:] == ["-n", "1"]


def test_udp_batch_reaches_the_config_of_the_compared_daemon(tmp_path: Path) -> None:
    """``--udp-batch`` sets nameserverd's ``server.udp_batch``; without it, its default."""
    assert speed._settings(argparse.Namespace(udp_batch=None)) == {}
    settings = speed._settings(argparse.Namespace(udp_batch=64))
    config = write_config(tmp_path / "c.yaml", port=5301, ipv6_only=False, **settings)
    assert load_config(config).server.udp_batch == 64


def test_reload_losses_the_client_dropped_itself_are_told_apart() -> None:
    """dnsperf counts a reply its own socket had no room for as lost; the verdict of the
    reload benchmark is on what the server lost."""
    measured = Measured(
        sent=100,
        completed=90,
        lost=10,
        rcodes="",
        qps=1.0,
        latency_avg=0.0,
        latency_max=0.0,
        client_drops=7,
    )
    assert measured.lost_by_server == 3
    assert replace(measured, client_drops=12).lost_by_server == 0
