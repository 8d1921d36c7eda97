"""sd_notify in pure Python, so ``Type=notify`` works without libsystemd.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines to the AF_UNIX socket named
in ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Tests use the same channel
as a readiness signal, which is why it is never skipped when the variable is set.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` to the service manager; ``False`` when there is none to tell.

    A manager that went away is logged, not raised: serving, or a clean stop, matters more
    than the notice.
    """
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as error:
        log.warning("cannot notify the service manager at %s: %s", path, error)
        return False
    return True
