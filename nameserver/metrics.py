"""Prometheus metrics that add up across worker processes.

Workers count in a ``Counter``, a whole batch of queries per call in C, and send the
supervisor a snapshot of their totals through a pipe about once a second and when they stop.
The supervisor keeps the latest snapshot of every live worker plus the sum of those that ended,
and prometheus-client serves the total on ``/metrics``. prometheus-client's own multiprocess
mode was the alternative; it writes a memory-mapped file on every increment and must be chosen
by an environment variable before the library is first imported, which suits a web server
started by a wrapper better than a daemon that forks itself.

Names follow Prometheus conventions, and CoreDNS's where a counterpart exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import dns.rcode
import dns.rdatatype
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from nameserver import __version__
from nameserver.answercache import Facts

# Seconds; a Python responder answers in tens to hundreds of microseconds.
DURATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25)
# Local addresses get a label each up to this many; the rest are counted as "other". A host
# with more addresses than this is one that adds them all the time, and labels never expire.
MAX_LOCAL_ADDRESSES = 64
OTHER = "other"

Snapshot = dict[str, Any]


# Distinct (transport, local address, (rcode, qtype) or None) counted per query before they are
# added into the labelled totals: a bound on memory whatever the traffic (roughly: the pending
# counts are summed per batch, so one batch may go past it).
_PENDING = 4096


class WorkerStats:
    """One worker's totals since it started.

    A query costs one counter increment, made in C: :meth:`record` counts the combination of
    all its labels for a whole batch at once, and the per-metric totals are summed from those
    when a snapshot is taken (or when many different combinations have piled up). Three
    counters and a histogram per query would cost about as much as answering it from the
    cache.
    """

    def __init__(self) -> None:
        self.queries: Counter[tuple[str, str, int]] = Counter()  # transport, family, qtype
        self.responses: Counter[tuple[str, int]] = Counter()  # transport, rcode
        self.local: Counter[bytes] = Counter()  # packed local address
        self.drops: Counter[str] = Counter()
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        # Counts of facts per transport and local address, facts ``None`` for a query not
        # answered: Counter.update counts a whole batch's facts in C, and a batch has mostly
        # been sent to one address.
        self._pending: dict[tuple[str, bytes], Counter[Facts | None]] = {}

    def record(
        self,
        transport: str,
        local: list[bytes],
        facts: list[Facts | None],
        seconds: float,
    ) -> None:
        """Count the answered queries of one batch by their facts, ``(rcode, qtype)`` (``None``:
        not answered); ``local[i]`` is the packed address query ``i`` was sent to. Queries that
        arrive together are answered together and replied to together, so each is counted
        with the batch's ``seconds``."""
        if local and local.count(local[0]) == len(local):
            self._counts(transport, local[0]).update(facts)
        else:
            for (address, known), count in Counter(zip(local, facts, strict=True)).items():
                self._counts(transport, address)[known] += count
        # Counting Nones compares each tuple with None the slow way: only when there are any.
        answered = len(facts) if all(facts) else len(facts) - facts.count(None)
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += answered
        self.duration_sum += seconds * answered
        if sum(map(len, self._pending.values())) > _PENDING:
            self._fold()

    def _counts(self, transport: str, local: bytes) -> Counter[Facts | None]:
        counts = self._pending.get((transport, local))
        if counts is None:
            counts = self._pending[transport, local] = Counter()
        return counts

    def _fold(self) -> None:
        """Add the pending counts into the labelled totals."""
        for (transport, local), pending in self._pending.items():
            family = "ipv4" if len(local) == 4 else "ipv6"
            if local not in self.local and len(self.local) >= MAX_LOCAL_ADDRESSES:
                local = b""
            for known, count in pending.items():
                if known is None:
                    continue
                rcode, qtype = known
                self.queries[transport, family, qtype] += count
                self.responses[transport, rcode] += count
                self.local[local] += count
        self._pending.clear()

    def snapshot(self) -> Snapshot:
        """The totals with text labels, as JSON can carry them."""
        self._fold()
        return {
            "queries": [
                [transport, family, _qtype_text(qtype), count]
                for (transport, family, qtype), count in self.queries.items()
            ],
            "responses": [
                [transport, dns.rcode.to_text(rcode), count]
                for (transport, rcode), count in self.responses.items()
            ],
            "local": [[_address_text(local), count] for local, count in self.local.items()],
            "drops": [[reason, count] for reason, count in self.drops.items()],
            "buckets": list(self.buckets),
            "sum": self.duration_sum,
        }


def snapshot_sender(fd: int) -> Callable[[WorkerStats], None]:
    """What a worker calls to report: one JSON line into its own pipe to the supervisor.

    The pipe is non-blocking: a supervisor that is busy for a moment costs a report, which the
    next one (they are totals) makes good, never a stalled worker.
    """

    def send(stats: WorkerStats) -> None:
        line = json.dumps(stats.snapshot(), separators=(",", ":")).encode() + b"\n"
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(fd, line)

    return send


class Totals:
    """The supervisor's sum over every worker, live or ended, for the HTTP thread to read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Snapshot] = {}
        self._ended: Snapshot = WorkerStats().snapshot()
        self._partial: dict[int, bytes] = {}

    def feed(self, pid: int, data: bytes) -> None:
        """Bytes read from a worker's pipe; its last complete line is its latest total."""
        buffered = self._partial.get(pid, b"") + data
        *lines, rest = buffered.split(b"\n")
        self._partial[pid] = rest
        if lines:
            with self._lock:
                self._live[pid] = json.loads(lines[-1])

    def ended(self, pid: int) -> None:
        """A worker is gone: its last total counts for ever."""
        self._partial.pop(pid, None)
        with self._lock:
            last = self._live.pop(pid, None)
            if last is not None:
                self._ended = _merge([self._ended, last])

    def total(self) -> Snapshot:
        with self._lock:
            return _merge([self._ended, *self._live.values()])


class Collector:
    """prometheus-client's view of the totals plus what only the supervisor knows."""

    def __init__(self, totals: Totals, state: Callable[[], ServerState]) -> None:
        self.totals = totals
        self.state = state

    def collect(self) -> Iterator[Metric]:
        total = self.totals.total()
        yield _counter(
            "nameserver_queries",
            "Queries answered, by transport, address family and query type.",
            ["transport", "family", "qtype"],
            total["queries"],
        )
        yield _counter(
            "nameserver_responses",
            "Responses sent, by transport and response code.",
            ["transport", "rcode"],
            total["responses"],
        )
        yield _counter(
            "nameserver_local_address_queries",
            "Queries answered, by the local address they were sent to "
            f'(at most {MAX_LOCAL_ADDRESSES} addresses, then "{OTHER}").',
            ["address"],
            _capped(total["local"]),
        )
        yield _counter(
            "nameserver_dropped",
            "Packets not answered, by reason.",
            ["reason"],
            total["drops"],
        )
        cumulative, running = [], 0
        for bound, count in zip([*DURATION_BUCKETS, float("inf")], total["buckets"], strict=True):
            running += count
            cumulative.append((_bound_text(bound), running))
        yield HistogramMetricFamily(
            "nameserver_query_duration_seconds",
            "Time from a query's arrival to its response, in the worker.",
            buckets=cumulative,
            sum_value=total["sum"],
        )
        yield from self.state().metrics()


class ServerState:
    """What the supervisor reports about itself: zones, reloads, workers, version."""

    def __init__(
        self, zones: list[tuple[str, int, int]], reloads: Counter[str], workers: int
    ) -> None:
        self.zones = zones  # (origin, serial, records)
        self.reloads = reloads
        self.workers = workers

    def metrics(self) -> Iterator[Metric]:
        serial = GaugeMetricFamily("nameserver_zone_serial", "SOA serial served.", labels=["zone"])
        records = GaugeMetricFamily(
            "nameserver_zone_records", "Resource records served.", labels=["zone"]
        )
        for origin, zone_serial, zone_records in self.zones:
            serial.add_metric([origin], zone_serial)
            records.add_metric([origin], zone_records)
        yield serial
        yield records
        yield _counter(
            "nameserver_reloads",
            "Reloads (SIGHUP), by result.",
            ["result"],
            [[result, self.reloads[result]] for result in ("success", "failure")],
        )
        yield GaugeMetricFamily("nameserver_workers", "Worker processes serving.", self.workers)
        info = GaugeMetricFamily(
            "nameserver_build_info", "The running version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info


def _counter(name: str, documentation: str, labels: list[str], rows: list[list[Any]]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for *values, count in rows:
        family.add_metric(values, count)
    return family


def _merge(snapshots: list[Snapshot]) -> Snapshot:
    """Add snapshots up, label set by label set."""
    merged: Snapshot = {"buckets": [0] * (len(DURATION_BUCKETS) + 1), "sum": 0.0}
    for key in ("queries", "responses", "local", "drops"):
        sums: Counter[tuple[str, ...]] = Counter()
        for snapshot in snapshots:
            for *values, count in snapshot[key]:
                sums[tuple(values)] += count
        merged[key] = [[*values, count] for values, count in sums.items()]
    for snapshot in snapshots:
        merged["buckets"] = [
            a + b for a, b in zip(merged["buckets"], snapshot["buckets"], strict=True)
        ]
        merged["sum"] += snapshot["sum"]
    return merged


def _capped(rows: list[list[Any]]) -> list[list[Any]]:
    """Workers cap their own address labels; together they may still see more."""
    rows = sorted(rows, key=lambda row: (row[0] == OTHER, -row[1]))
    kept = [row for row in rows[:MAX_LOCAL_ADDRESSES] if row[0] != OTHER]
    rest = sum(count for _, count in rows[len(kept) :])
    return [*kept, [OTHER, rest]] if rest else kept


def _qtype_text(qtype: int) -> str:
    return "none" if qtype < 0 else dns.rdatatype.to_text(qtype)


def _address_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed)) if packed else OTHER


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
