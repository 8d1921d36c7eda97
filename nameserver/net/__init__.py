"""The network shell: sockets, ancillary data and framing. Nothing here knows DNS."""

from collections.abc import Callable

# What the network layer hands every query to: the query's bytes, the peer's address tuple (as
# the socket API gives it; None over UDP when the endpoint was told the handler does not need
# it) and the packed local address it was sent to; the reply, or None.
Handler = Callable[[bytes, "tuple | None", bytes], "bytes | None"]
