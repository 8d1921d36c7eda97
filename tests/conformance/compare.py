"""Section-by-section comparison of nameserverd's reply with Knot's, and the report of it.

Everything a client can observe is compared: whether there is a reply at all, the ID echo,
opcode, RCODE (extended, so BADVERS counts), every header flag, the question exactly (letter
case too), each section as a multiset of RRs, the order of a CNAME/DNAME chain in the answer
(RFC 1034 §3.6.2 and RFC 6672 §2.3 put the chain first, in order), and the OPT RR. A
difference is then either accepted by a named rule of ``accepted.py`` or it fails the case.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import dns.rdatatype

from .accepted import RULES, Rule
from .case import Case
from .normal import FLAG_BITS, RR, SECTIONS, Reply, parse
from .wire import Exchange

_CHAIN_TYPES = (dns.rdatatype.CNAME, dns.rdatatype.DNAME)


@dataclass(frozen=True)
class Difference:
    """One way the replies differ. ``aspect`` is what differs ("rcode", "flag AA",
    "additional", "edns payload"...); for sections, the RRs found on one side only."""

    aspect: str
    knot: str
    ours: str
    only_knot: tuple[RR, ...] = ()
    only_ours: tuple[RR, ...] = ()

    def describe(self) -> str:
        if not (self.only_knot or self.only_ours):
            return f"{self.aspect}: Knot {self.knot} / nameserverd {self.ours}"
        lines = [f"{self.aspect}:"]
        lines += [f"  only Knot:        {rr.text}" for rr in self.only_knot]
        lines += [f"  only nameserverd: {rr.text}" for rr in self.only_ours]
        return "\n".join(lines)


@dataclass
class Outcome:
    """The result for one case: the replies, the differences that fail it, and the accepted."""

    case: Case
    knot: Reply | None
    ours: Reply | None
    failures: list[Difference] = field(default_factory=list)
    accepted: list[tuple[Difference, Rule]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _section(name: str, knot: tuple[RR, ...], ours: tuple[RR, ...]) -> list[Difference]:
    knot_count, ours_count = Counter(knot), Counter(ours)
    if knot_count == ours_count:
        return []
    only_knot = tuple(sorted((knot_count - ours_count).elements()))
    only_ours = tuple(sorted((ours_count - knot_count).elements()))
    return [
        Difference(name, f"{len(knot)} RRs", f"{len(ours)} RRs", only_knot, only_ours),
    ]


def _chain(reply: Reply) -> list[tuple[str, str]]:
    """The answer's RRsets in order (owner, type), RRSIGs left out, when it holds a chain."""
    if not any(rr.rdtype in _CHAIN_TYPES for rr in reply.answer):
        return []
    order: list[tuple[str, str]] = []
    for rr in reply.answer:
        key = (rr.owner, rr.type_name)
        if rr.rdtype != dns.rdatatype.RRSIG and (not order or order[-1] != key):
            order.append(key)
    return order


def _edns(knot: Reply, ours: Reply) -> list[Difference]:
    if (knot.edns is None) != (ours.edns is None):

        def state(reply: Reply) -> str:
            return "no OPT" if reply.edns is None else f"OPT ({reply.edns.describe()})"

        return [Difference("edns presence", state(knot), state(ours))]
    if knot.edns is None or ours.edns is None:
        return []
    found = []
    for aspect in ("version", "payload", "do", "other_flags", "options"):
        mine, theirs = getattr(ours.edns, aspect), getattr(knot.edns, aspect)
        if mine != theirs:
            found.append(Difference(f"edns {aspect}", repr(theirs), repr(mine)))
    return found


def differences(knot: Reply, ours: Reply) -> list[Difference]:
    """Every observable difference between two parsed replies."""
    found: list[Difference] = []
    if (knot.parse_error is None) != (ours.parse_error is None):
        found.append(
            Difference("parse", knot.parse_error or "parsed", ours.parse_error or "parsed")
        )
    for aspect in ("opcode", "rcode"):
        if getattr(knot, aspect) != getattr(ours, aspect):
            if aspect == "rcode":
                found.append(Difference("rcode", knot.rcode_text, ours.rcode_text))
            else:
                found.append(Difference(aspect, str(knot.opcode), str(ours.opcode)))
    for flag in FLAG_BITS:
        if (flag in knot.flags) != (flag in ours.flags):
            found.append(
                Difference(
                    f"flag {flag}", str(int(flag in knot.flags)), str(int(flag in ours.flags))
                )
            )
    if knot.question != ours.question:
        found.append(Difference("question", repr(knot.question), repr(ours.question)))
    for name in SECTIONS:
        found += _section(name, knot.section(name), ours.section(name))
    if not any(d.aspect == "answer" for d in found) and _chain(knot) != _chain(ours):
        found.append(Difference("answer order", repr(_chain(knot)), repr(_chain(ours))))
    found += _edns(knot, ours)
    return found


def compare(case: Case, query_id: int, knot: Exchange, ours: Exchange) -> Outcome:
    """Compare the two exchanges for ``case`` and sort the differences by the rules."""
    knot_reply = None if knot.reply is None else parse(knot.reply)
    ours_reply = None if ours.reply is None else parse(ours.reply)
    outcome = Outcome(case, knot_reply, ours_reply)
    found: list[Difference] = []
    for server, got in (("Knot", knot), ("nameserverd", ours)):
        if not got.complete:
            found.append(Difference("probe", "", f"{server} answered neither case nor probe"))
        if got.others:
            found.append(Difference("replies", "", f"{server} answered {1 + len(got.others)}x"))
    if ours_reply is not None and ours_reply.query_id != query_id:
        found.append(Difference("id", str(query_id), str(ours_reply.query_id)))
    if knot_reply is None or ours_reply is None:
        if (knot_reply is None) != (ours_reply is None):

            def state(reply: Reply | None) -> str:
                return "no reply" if reply is None else f"a reply ({reply.rcode_text})"

            found.append(Difference("reply", state(knot_reply), state(ours_reply)))
    else:
        found += differences(knot_reply, ours_reply)
    for difference in found:
        rule = _accepting_rule(case, knot_reply, ours_reply, difference)
        if rule is None:
            outcome.failures.append(difference)
        else:
            outcome.accepted.append((difference, rule))
    return outcome


def _accepting_rule(
    case: Case, knot: Reply | None, ours: Reply | None, difference: Difference
) -> Rule | None:
    for rule in RULES:
        if rule.applies(case) and rule.accepts(case, knot, ours, difference):
            return rule
    return None


def report(outcome: Outcome) -> str:
    """A readable account of a failed case: what was asked, what differs, both replies."""
    case = outcome.case
    lines = [f"nameserverd differs from Knot for: {case.id}"]
    if case.note:
        lines.append(f"  ({case.note})")
    lines.append("")
    lines += [difference.describe() for difference in outcome.failures]
    if outcome.accepted:
        lines.append("")
        lines += [f"accepted ({rule.name}): {d.describe()}" for d, rule in outcome.accepted]
    for server, reply in (("Knot", outcome.knot), ("nameserverd", outcome.ours)):
        lines.append("")
        lines.append(f"--- {server}:")
        lines.append("(no reply)" if reply is None else reply.text)
    return "\n".join(lines)
