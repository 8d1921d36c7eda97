"""What counting a query costs next to answering it, per query, in one process.

Run from the repository root: ``.venv/bin/python -m bench.metrics_cost``. It needs nothing but
the project; it sends no traffic. It times ``WorkerStats.record`` (what every answered query
pays for metrics) against ``Responder.respond_many`` for the same queries, both called with a
batch of ``BATCH`` as the server's batched loop does, and prints a table per query.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import dns.message
import dns.name

from nameserver.config import ZoneSettings
from nameserver.metrics import WorkerStats
from nameserver.responder import Responder, Transport
from nameserver.zones import load_zones

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [("www.example.com.", "A"), ("nope.example.com.", "A"), ("example.com.", "MX")]
ROUNDS = 2_000
BATCH = 64
LOCAL = [bytes([127, 0, 0, 53])] * BATCH


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
    print(f"{'query':<24} {'respond µs':>11} {'record µs':>10} {'metrics share':>14}")
    for qname, qtype in QUESTIONS:
        # Handed over as the network layer does: each query less its ID.
        bodies = [dns.message.make_query(qname, qtype).to_wire()[2:] for _ in range(BATCH)]
        _replies, facts = responder.respond_many(bodies, Transport.UDP)
        respond = per_call(partial(responder.respond_many, bodies, Transport.UDP), ROUNDS // 10)
        record = per_call(partial(stats.record, "udp", LOCAL, facts, 3e-4), ROUNDS)
        respond, record = respond / BATCH, record / BATCH
        share = record / (respond + record)
        print(f"{qname + ' ' + qtype:<24} {respond:>11.2f} {record:>10.2f} {share:>13.1%}")


if __name__ == "__main__":
    main()
