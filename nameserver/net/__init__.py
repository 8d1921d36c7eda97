"""The network shell: sockets, ancillary data and framing. Nothing here knows DNS."""
