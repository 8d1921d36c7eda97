"""Rendered answers kept for the queries that come again, so dnspython answers each only once.

Two levels, both filled from dnspython's answers. The first is keyed by the query's bytes less
its ID: a repeated query (a load generator, a resolver that asks the same way each time) costs
one dictionary probe and one concatenation. The second is keyed by :class:`Shape.key`, which
ignores the ID, RD, CD, the name's letter case and cookie contents; a hit there copies those
from the query into the stored answer, which is what dnspython would have produced (the
question is echoed, and the answer's names point into the question by compression).

Answers about names that do not exist (NXDOMAIN, or synthesized from a wildcard) are kept at the
exact level only, under a budget of their own, and only once their query comes a second time:
a name asked again and again (a mistyped host, a resolver retrying) is answered by one probe,
while a flood of random names stores nothing and never pushes out the answers for names that
exist.

A cache belongs to one :class:`Responder`, which belongs to one generation of zone data, so a
reload can never serve stale answers. Each level is bounded in bytes and simply emptied when
full: no bookkeeping per hit, and an attack of unique names cannot grow it.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

from nameserver.wirequery import Shape

# Bytes of stored answers per level and transport: at most four times this per worker.
LEVEL_BUDGET = 32 << 20
# Bytes of answers about names that do not exist, per transport, within the exact level.
NONEXISTENT_BUDGET = 8 << 20
# Queries about missing names remembered as seen once, before their answers are kept; then
# the memory starts over. A few MiB per transport and worker at most.
_SEEN_LIMIT = 1 << 16
# What a stored entry costs besides its answer's bytes (key, tuple, dict slot), roughly.
_ENTRY_OVERHEAD = 200
# Distinct facts shared (see shared_facts()); a flood of odd query types gets tuples of its own.
_SHARED_FACTS = 1024
_FACTS: dict[Facts, Facts] = {}
_RD = 0x01
_ONE_QUESTION = b"\0\x01"
_CD = 0x10


class Outcome(NamedTuple):
    """A response and the facts about it that are counted and logged; ``qtype`` is -1 for a
    query without a question.

    The shape level stores these, with ID zero and RD and CD clear in ``wire``.
    """

    wire: bytes
    rcode: int
    qtype: int = -1


# What is counted and logged of a response, ``(rcode, qtype)``: the exact level stores one
# with each answer and hands the same tuple out with every hit, so a hit makes none.
Facts = tuple[int, int]
# An exact-level entry: the response less its ID, and its facts.
Exact = tuple[bytes, Facts]


# Outcome's own constructor is Python code; the fast renderer's path makes the tuple directly:
# ``new_outcome(Outcome, (wire, rcode, qtype))``.
new_outcome = tuple.__new__
Entry = TypeVar("Entry", Exact, Outcome)


class _Level(Generic[Entry]):
    """One bounded dictionary of entries."""

    def __init__(self, budget: int) -> None:
        self.entries: dict[bytes, Entry] = {}
        self._budget = budget
        self._used = 0

    def put(self, key: bytes, entry: Entry) -> None:
        if key in self.entries:  # the same answer again: a query answered twice at once
            return
        cost = _cost(key, entry)
        if self._used + cost > self._budget:
            self.entries.clear()
            self._used = 0
        self.entries[key] = entry
        self._used += cost


class _Share:
    """Answers kept in another level's dictionary under a budget of their own; when full, only
    they are removed (each key once, so a flood costs a constant per entry).

    An answer is kept the second time its query is seen, not the first: a flood of random
    names, each seen once, then costs a set entry per name instead of a stored answer (10 %
    less per name in all, counted with callgrind); a name that does come again is rendered
    twice, then answered from here.
    """

    def __init__(self, level: _Level[Exact], budget: int) -> None:
        self._entries = level.entries
        self._budget = budget
        self._used = 0
        self._keys: list[bytes] = []
        self._seen: set[bytes] = set()

    def put(self, key: bytes, answer: Outcome) -> None:
        """Keep ``answer`` for ``key``, a query less its ID, as the exact level keeps it, if
        the query was seen before; else remember that it was.

        A flood of random names passes through here: the first sighting returns before any
        other work."""
        seen = self._seen
        if key not in seen:
            if len(seen) >= _SEEN_LIMIT:
                seen.clear()
            seen.add(key)
            return
        cost = _cost(key, answer)
        if self._used + cost > self._budget:
            pop = self._entries.pop
            for old in self._keys:
                pop(old, None)  # gone already when the level itself was emptied
            self._keys.clear()
            self._used = 0
        self._entries[key] = exact_entry(*answer)
        self._keys.append(key)
        self._used += cost


def _cost(key: bytes, entry: Exact | Outcome) -> int:
    return len(key) + len(entry[0]) + _ENTRY_OVERHEAD


def exact_entry(wire: bytes, rcode: int, qtype: int) -> Exact:
    """The exact level's entry for a complete response: its bytes less the ID, its facts."""
    return wire[2:], shared_facts(rcode, qtype)


def shared_facts(rcode: int, qtype: int) -> Facts:
    """``(rcode, qtype)``, one tuple per combination while there are few: metrics count by
    them, and a tuple met before compares by identity and is in the CPU's cache."""
    known = (rcode, qtype)
    shared = _FACTS.get(known)
    if shared is not None:
        return shared
    if len(_FACTS) < _SHARED_FACTS:
        _FACTS[known] = known
    return known


class AnswerCache:
    """Both levels for one transport (answers over UDP and TCP differ in size limits and ANY)."""

    def __init__(
        self, budget: int = LEVEL_BUDGET, nonexistent_budget: int = NONEXISTENT_BUDGET
    ) -> None:
        self._exact: _Level[Exact] = _Level(budget)
        self._shaped: _Level[Outcome] = _Level(budget)
        self.exact = self._exact.entries
        # Keeps an answer about a name that does not exist for the query's exact bytes only
        # (``store_nonexistent(query[2:], answer)``), in the exact level's share for them.
        self.store_nonexistent = _Share(self._exact, nonexistent_budget).put

    def shaped(self, wire: bytes, shape: Shape) -> Outcome | None:
        """The answer to ``wire`` from the shape level, made its own; also kept at the exact
        level so that the next identical query is a single probe."""
        stored = self._shaped.entries.get(shape.key)
        if stored is None:
            return None
        template = stored.wire
        end = shape.qname_end
        flags = bytes((template[2] | wire[2] & _RD, template[3] | wire[3] & _CD))
        answer = wire[:2] + flags + template[4:12] + wire[12:end] + template[end:]
        self._exact.put(wire[2:], exact_entry(answer, stored.rcode, stored.qtype))
        return Outcome(answer, stored.rcode, stored.qtype)

    def store(self, wire: bytes, shape: Shape, entry: Outcome, case_free: bool) -> None:
        """Keep ``entry`` (a complete answer to ``wire``) at both levels; at the shape level
        only when it echoes the question, which a hit there overwrites with the query's, and
        is ``case_free``: its bytes do not repeat the name's letter case anywhere else."""
        answer = entry.wire
        self._exact.put(wire[2:], exact_entry(*entry))
        if case_free and answer[4:6] == _ONE_QUESTION:
            template = (
                b"\0\0" + bytes((answer[2] & ~_RD & 0xFF, answer[3] & ~_CD & 0xFF)) + answer[4:]
            )
            self._shaped.put(shape.key, entry._replace(wire=template))
