"""The network shell: sockets, ancillary data and framing. Nothing here knows DNS."""

from collections.abc import Callable

# What the network layer hands queries to, as many as arrived together: their bytes, their
# peers' address tuples (as the socket API gives them; None over UDP when the endpoint was told
# the handler does not need them) and the packed local addresses they were sent to. It returns
# one reply or None per query, in order.
Handler = Callable[
    [list[bytes], "list[tuple] | None", list[bytes]],
    "list[bytes | None]",
]
