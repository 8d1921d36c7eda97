"""Metrics without processes: what a worker counts, how the supervisor adds workers up, and the
text Prometheus scrapes."""

from __future__ import annotations

import json
import os
from collections import Counter

import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, generate_latest

from nameserver import metrics
from nameserver.answercache import Facts
from nameserver.metrics import MAX_LOCAL_ADDRESSES, Totals, WorkerStats, snapshot_sender

V4 = bytes([127, 0, 0, 53])
V6 = bytes(15) + b"\x01"


def facts(qtype: str = "A", rcode: int = dns.rcode.NOERROR) -> Facts:
    return rcode, dns.rdatatype.from_text(qtype)


def scrape(totals: Totals, state: metrics.ServerState | None = None) -> str:
    registry = CollectorRegistry()
    server = state or metrics.ServerState([("example.com.", 7, 16)], Counter(success=2), 2)
    registry.register(metrics.Collector(totals, lambda: server))
    return generate_latest(registry).decode()


def test_a_worker_counts_by_label() -> None:
    stats = WorkerStats()
    stats.record("udp", [V4], [facts()], 0.0003)
    stats.record("udp", [V4], [facts("AAAA", dns.rcode.NXDOMAIN)], 0.002)
    stats.record("tcp", [V6], [(dns.rcode.FORMERR, -1)], 0.00001)
    snapshot = stats.snapshot()
    assert sorted(map(tuple, snapshot["queries"])) == [
        ("tcp", "ipv6", "none", 1),
        ("udp", "ipv4", "A", 1),
        ("udp", "ipv4", "AAAA", 1),
    ]
    assert sorted(map(tuple, snapshot["responses"])) == [
        ("tcp", "FORMERR", 1),
        ("udp", "NOERROR", 1),
        ("udp", "NXDOMAIN", 1),
    ]
    assert sorted(map(tuple, snapshot["local"])) == [("127.0.0.53", 2), ("::1", 1)]
    assert sum(snapshot["buckets"]) == 3
    assert abs(snapshot["sum"] - 0.00231) < 1e-9


def test_a_batch_counts_its_answered_queries_at_its_time() -> None:
    """Queries answered together are replied to together: each answered one is observed with
    the batch's time, and one without an answer is not counted at all."""
    stats = WorkerStats()
    local = [V4, V6, V4, V4]
    counted = [facts(), None, facts("AAAA"), facts(rcode=dns.rcode.NXDOMAIN)]
    stats.record("udp", local, counted, 0.0003)
    snapshot = stats.snapshot()
    assert sorted(map(tuple, snapshot["queries"])) == [
        ("udp", "ipv4", "A", 2),
        ("udp", "ipv4", "AAAA", 1),
    ]
    assert dict(map(tuple, snapshot["local"])) == {"127.0.0.53": 3}
    below = metrics.DURATION_BUCKETS.index(0.0005)  # the first bucket 0.0003 s falls into
    assert snapshot["buckets"][below] == 3 and sum(snapshot["buckets"]) == 3
    assert abs(snapshot["sum"] - 0.0009) < 1e-12


def test_local_addresses_beyond_the_cap_count_as_other() -> None:
    stats = WorkerStats()
    for index in range(MAX_LOCAL_ADDRESSES + 10):
        stats.record("udp", [bytes([10, 0, index // 256, index % 256])], [facts()], 0.001)
    local = dict(map(tuple, stats.snapshot()["local"]))
    assert len(local) == MAX_LOCAL_ADDRESSES + 1
    assert local["other"] == 10


def test_many_label_combinations_add_up() -> None:
    """Per query a worker counts one combination of labels and adds them into the totals
    when many have piled up: every qtype there is on two transports, far more combinations
    than are kept pending, still adds up exactly."""
    stats = WorkerStats()
    for qtype in range(65536):
        stats.record("udp", [V4], [(qtype % 6, qtype)], 0.0001 * (qtype % 7))
        stats.record("tcp", [V6], [(dns.rcode.NOERROR, qtype)], 0.0002)
    snapshot = stats.snapshot()
    assert len(snapshot["queries"]) == 2 * 65536
    assert sum(row[-1] for row in snapshot["queries"]) == 2 * 65536
    assert dict(map(tuple, snapshot["local"])) == {"127.0.0.53": 65536, "::1": 65536}
    responses = {tuple(row[:2]): row[2] for row in snapshot["responses"]}
    assert responses["tcp", "NOERROR"] == 65536
    assert responses["udp", "NOERROR"] == -(-65536 // 6)
    assert sum(snapshot["buckets"]) == 2 * 65536


def test_totals_add_live_and_ended_workers() -> None:
    first, second = WorkerStats(), WorkerStats()
    for _ in range(3):
        first.record("udp", [V4], [facts()], 0.001)
    second.record("udp", [V4], [facts()], 0.001)
    totals = Totals()
    line = json.dumps(first.snapshot()).encode() + b"\n"
    totals.feed(1, line[:10])  # a report may arrive in pieces
    totals.feed(1, line[10:])
    totals.feed(2, json.dumps(second.snapshot()).encode() + b"\n")
    assert totals.total()["queries"] == [["udp", "ipv4", "A", 4]]
    totals.ended(1)
    totals.feed(2, json.dumps(second.snapshot()).encode() + b"\n")  # a later, equal report
    assert totals.total()["queries"] == [["udp", "ipv4", "A", 4]]


def test_reports_travel_through_a_pipe() -> None:
    read, write = os.pipe2(os.O_NONBLOCK)
    stats = WorkerStats()
    stats.record("tcp", [V6], [facts()], 0.001)
    stats.drops["truncated"] += 2
    snapshot_sender(write)(stats)
    totals = Totals()
    totals.feed(9, os.read(read, 65536))
    os.close(read)
    os.close(write)
    assert totals.total()["drops"] == [["truncated", 2]]


def test_the_scrape_has_every_promised_metric() -> None:
    stats = WorkerStats()
    stats.record("udp", [V4], [facts()], 0.0004)
    stats.drops["non_unicast_destination"] += 1
    totals = Totals()
    totals.feed(1, json.dumps(stats.snapshot()).encode() + b"\n")
    text = scrape(totals)
    for line in (
        'nameserver_queries_total{family="ipv4",qtype="A",transport="udp"} 1.0',
        'nameserver_responses_total{rcode="NOERROR",transport="udp"} 1.0',
        'nameserver_local_address_queries_total{address="127.0.0.53"} 1.0',
        'nameserver_dropped_total{reason="non_unicast_destination"} 1.0',
        'nameserver_query_duration_seconds_bucket{le="0.0005"} 1.0',
        "nameserver_query_duration_seconds_count 1.0",
        'nameserver_zone_serial{zone="example.com."} 7.0',
        'nameserver_zone_records{zone="example.com."} 16.0',
        'nameserver_reloads_total{result="success"} 2.0',
        'nameserver_reloads_total{result="failure"} 0.0',
        "nameserver_workers 2.0",
        'nameserver_build_info{version="',
    ):
        assert line in text, f"{line!r} not in:\n{text}"
