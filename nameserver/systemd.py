"""sd_notify in pure Python, so ``Type=notify`` works without libsystemd.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines to the AF_UNIX socket named
in ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Tests use the same channel
as a readiness signal, which is why it is never skipped when the variable is set.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` to the service manager; ``False`` when there is none to tell."""
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), address)
    return True
