"""The network shell: sockets, ancillary data and framing. Nothing here knows DNS but this: a
reply starts with the two bytes its query started with (the ID)."""

from collections.abc import Callable

# What the network layer hands queries to, as many as arrived together: their bytes less the
# first two, their peers' address tuples (as the socket API gives them; None over UDP when the
# endpoint was told the handler does not need them) and the packed local addresses they were
# sent to. It returns one reply or None per query, in order, each less the two bytes that the
# network layer puts back from its query. A server answering from stored replies then hands
# over the very bytes it stored, and the batched loop sends the ID straight from the query's
# buffer, with no copy of either.
Handler = Callable[
    [list[bytes], "list[tuple] | None", list[bytes]],
    "list[bytes | None]",
]
