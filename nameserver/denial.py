"""Which NSEC or NSEC3 records of a pre-signed zone prove that something does not exist.

A signed zone already holds every proof; answering is choosing the right ones (RFC 4035 §3.1.3
for NSEC, RFC 5155 §7.2 for NSEC3). Both chains offer the same questions, so the lookup asks
without knowing which kind of zone it is in. Each answer is a list of owner names whose NSEC or
NSEC3 RRset (and its RRSIG) belongs in the authority section.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Protocol

import dns.dnssec
import dns.name
import dns.rdatatype
from dns.rdtypes.ANY.NSEC3PARAM import NSEC3PARAM


class Chain(Protocol):
    rdtype: int

    def nxdomain(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        """The name does not exist, nor does a wildcard at its closest encloser."""

    def nodata(self, name: dns.name.Name) -> list[dns.name.Name]:
        """The name exists (perhaps as an empty non-terminal) without the type asked for.
        For DS at an insecure delegation this is also the proof that no DS exists."""

    def wildcard_answer(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        """A wildcard answered, which is only right if the name itself does not exist."""

    def wildcard_nodata(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        """The name does not exist and the wildcard that matches it lacks the type."""


def wildcard(encloser: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"*", *encloser.labels))


def _unique(names: Iterable[dns.name.Name]) -> list[dns.name.Name]:
    return list(dict.fromkeys(names))


class NsecChain:
    """NSEC owners in canonical order (``dns.name.Name`` compares canonically, RFC 4034 §6.1).
    Every name of the zone is at or after the apex, so a predecessor always exists."""

    rdtype = dns.rdatatype.NSEC

    def __init__(self, owners: Iterable[dns.name.Name]) -> None:
        self._owners = sorted(owners)

    def _covering(self, name: dns.name.Name) -> dns.name.Name:
        """The NSEC whose owner is ``name`` or the last one before it."""
        return self._owners[max(bisect.bisect_right(self._owners, name) - 1, 0)]

    def nxdomain(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        return _unique([self._covering(qname), self._covering(wildcard(encloser))])

    def nodata(self, name: dns.name.Name) -> list[dns.name.Name]:
        # For an empty non-terminal the covering NSEC is the proof: its next name is below.
        return [self._covering(name)]

    def wildcard_answer(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        return [self._covering(qname)]

    def wildcard_nodata(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        return _unique([self._covering(qname), self._covering(wildcard(encloser))])


class Nsec3Chain:
    """NSEC3 owners ordered by hash; names are hashed with the apex NSEC3PARAM (RFC 5155)."""

    rdtype = dns.rdatatype.NSEC3

    def __init__(
        self, origin: dns.name.Name, param: NSEC3PARAM, owners: Iterable[dns.name.Name]
    ) -> None:
        self._origin = origin
        self._param = param
        by_hash = sorted((owner.labels[0].lower(), owner) for owner in owners)
        self._hashes = [digest for digest, _ in by_hash]
        self._owners = [owner for _, owner in by_hash]

    def _hash(self, name: dns.name.Name) -> bytes:
        digest = dns.dnssec.nsec3_hash(
            name, self._param.salt, self._param.iterations, self._param.algorithm
        )
        return digest.lower().encode()

    def _matching(self, name: dns.name.Name) -> dns.name.Name | None:
        digest = self._hash(name)
        index = bisect.bisect_left(self._hashes, digest)
        if index < len(self._hashes) and self._hashes[index] == digest:
            return self._owners[index]
        return None

    def _covering(self, name: dns.name.Name) -> dns.name.Name:
        """The NSEC3 whose hash range holds ``name``'s hash; the last one wraps around."""
        return self._owners[bisect.bisect_right(self._hashes, self._hash(name)) - 1]

    def _closest_encloser_proof(
        self, qname: dns.name.Name, encloser: dns.name.Name
    ) -> list[dns.name.Name]:
        """RFC 5155 §7.2.1: the encloser exists and the next name down towards qname does not.

        An encloser without an NSEC3 of its own (inside an opt-out span) is replaced by the
        closest provable one above it.
        """
        while (match := self._matching(encloser)) is None and encloser != self._origin:
            encloser = encloser.parent()
        next_closer = qname.split(len(encloser) + 1)[1]
        return _unique([name for name in (match, self._covering(next_closer)) if name is not None])

    def nxdomain(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        proof = self._closest_encloser_proof(qname, encloser)
        return _unique([*proof, self._covering(wildcard(encloser))])

    def nodata(self, name: dns.name.Name) -> list[dns.name.Name]:
        match = self._matching(name)
        if match is not None:
            return [match]
        # RFC 5155 §7.2.4: no NSEC3 for the name, as for an unsigned delegation under opt-out.
        return self._closest_encloser_proof(name, name.parent())

    def wildcard_answer(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        return [self._covering(qname.split(len(encloser) + 1)[1])]

    def wildcard_nodata(self, qname: dns.name.Name, encloser: dns.name.Name) -> list[dns.name.Name]:
        proof = self._closest_encloser_proof(qname, encloser)
        match = self._matching(wildcard(encloser))
        return _unique([*proof, *([match] if match is not None else [])])
