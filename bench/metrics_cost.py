"""What counting a query costs next to answering it, per query, in one process.

Run from the repository root: ``.venv/bin/python -m bench.metrics_cost``. It needs nothing but
the project; it sends no traffic. It times ``WorkerStats.record`` (what every answered query
pays for metrics) against ``Responder.respond`` for the same queries, and prints a table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name

from nameserver.config import ZoneSettings
from nameserver.metrics import WorkerStats
from nameserver.responder import Responder, Transport
from nameserver.zones import load_zones

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [("www.example.com.", "A"), ("nope.example.com.", "A"), ("example.com.", "MX")]
ROUNDS = 20_000


def per_call(function: Callable[[], object], rounds: int) -> float:
    """Microseconds per call, the best of three runs (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, time.perf_counter() - started)
    return best / rounds * 1e6


def main() -> None:
    zone = ZoneSettings(dns.name.from_text("example.com."), ROOT / "zones" / "example.com.zone")
    responder = Responder(load_zones([zone]))
    stats = WorkerStats()
    local = bytes([127, 0, 0, 53])
    print(f"{'query':<24} {'respond µs':>11} {'record µs':>10} {'metrics share':>14}")
    for qname, qtype in QUESTIONS:
        wire = dns.message.make_query(qname, qtype).to_wire()
        outcome = responder.respond(wire, Transport.UDP)
        assert outcome is not None
        respond = per_call(lambda wire=wire: responder.respond(wire, Transport.UDP), ROUNDS // 10)
        record = per_call(lambda outcome=outcome: stats.record("udp", local, outcome, 3e-4), ROUNDS)
        share = record / (respond + record)
        print(f"{qname + ' ' + qtype:<24} {respond:>11.1f} {record:>10.2f} {share:>13.1%}")


if __name__ == "__main__":
    main()
