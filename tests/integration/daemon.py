"""Start and stop nameserverd the way a user (or systemd) would, inside a test namespace.

Readiness is the daemon's own ``READY=1`` sd_notify datagram, never a sleep: the test owns the
``NOTIFY_SOCKET`` (a filesystem AF_UNIX socket, which works across network namespaces) and waits
on it and on a pidfd of the daemon at the same time, so an early exit is reported at once with
the daemon's stderr.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .netns import Topology, netns_argv

ZONE_DIR = Path(__file__).parent / "zones"
EXAMPLE_ZONE = ZONE_DIR / "example.com.zone"
MODES = {"dual-stack": False, "ipv6-only": True}
"""Mode name -> ``ipv6_only``. Both listen on ``::``; ipv6-only adds a socket on 0.0.0.0."""

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class DaemonError(RuntimeError):
    """The daemon did not start, did not stop cleanly, or is not installed."""


def daemon_executable() -> Path:
    """The ``nameserverd`` console script of the interpreter running the tests (the venv's)."""
    candidate = Path(sys.executable).parent / "nameserverd"
    if not candidate.exists():
        raise DaemonError(
            f"{candidate} does not exist: install the project (pip install -e .) into this venv"
        )
    return candidate


def write_config(
    path: Path,
    *,
    port: int,
    ipv6_only: bool,
    listen: tuple[str, ...] = ("::",),
    zones: dict[str, Path] | None = None,
    **server: Any,
) -> Path:
    """Write a nameserverd YAML config to ``path`` and return it.

    ``zones`` maps zone names to files; the default serves the suite's ``example.com.`` zone.
    Further keyword arguments are more ``server:`` settings (``workers=2``, ``user=...``).
    """
    zones = zones if zones is not None else {"example.com.": EXAMPLE_ZONE}
    document: dict[str, Any] = {
        "server": {"listen": list(listen), "port": port, "ipv6_only": ipv6_only, **server},
        "zones": [{"name": name, "file": str(file)} for name, file in zones.items()],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    """Run ``nameserverd --config CONFIG --check`` (no namespace needed) and return the result."""
    return subprocess.run(
        [str(daemon_executable()), "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _notify_fields(datagram: bytes) -> dict[str, str]:
    """Parse one sd_notify datagram: newline-separated KEY=VALUE lines."""
    fields: dict[str, str] = {}
    for line in datagram.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


class NotifyEndpoint:
    """Our end of ``NOTIFY_SOCKET``, kept open and read for the daemon's whole life, as systemd's.

    After READY=1 a thread keeps draining it: a Unix datagram socket queues only a few messages
    (``net.unix.max_dgram_qlen``), and a daemon whose notify ``sendto`` blocks would hang.
    """

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        # Writable by anyone, like systemd's own: a daemon that dropped privileges still
        # reports (connecting to a socket file needs write permission on it).
        path.chmod(0o666)
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
        """Block until READY=1 (None) or until the process exits or time runs out (the reason).

        Waits on the socket and on a pidfd together, so an early exit is seen at once.
        """
        deadline = time.monotonic() + timeout
        pidfd = os.pidfd_open(proc.pid)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, selectors.EVENT_READ, "notify")
                selector.register(pidfd, selectors.EVENT_READ, "exit")
                while (left := deadline - time.monotonic()) > 0:
                    for key, _ in selector.select(left):
                        if key.data == "exit":
                            return f"exited with status {proc.wait()} before READY=1"
                        self.messages.append(_notify_fields(self._sock.recv(65536)))
                        if self.messages[-1].get("READY") == "1":
                            self._start_draining()
                            return None
                return f"sent no READY=1 within {timeout}s"
        finally:
            os.close(pidfd)

    def _start_draining(self) -> None:
        """Read (and keep) every later message in a background thread."""
        self._sock.settimeout(0.2)
        self._drainer = threading.Thread(target=self._drain, name="notify-drain", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                fields = _notify_fields(self._sock.recv(65536))
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                self.messages.append(fields)
                self._arrived.notify_all()

    def wait_for(self, key: str, value: str, after: int, timeout: float) -> dict[str, str]:
        """The first message past index ``after`` with ``key=value``, as the daemon sends it.

        This is how tests wait for a reload to finish: RELOADING=1, then READY=1.
        """

        def found() -> dict[str, str] | None:
            return next((m for m in self.messages[after:] if m.get(key) == value), None)

        with self._arrived:
            if not self._arrived.wait_for(lambda: found() is not None, timeout):
                raise DaemonError(f"no {key}={value} within {timeout}s: {self.messages[after:]}")
            message = found()
        assert message is not None
        return message

    def close(self) -> None:
        """Stop listening; a daemon notifying after this gets ECONNREFUSED."""
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join()
        self._sock.close()


@dataclass
class Daemon:
    """A running nameserverd: its process, its log, its port, and our end of NOTIFY_SOCKET.

    The notify socket stays open for the daemon's whole life, as systemd's does: the daemon
    may report more than READY=1 (STOPPING=1 on the way out, STATUS=...).
    """

    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int
    netns: str
    notify: NotifyEndpoint

    def log(self) -> str:
        """Everything the daemon wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether the main process is still running."""
        return self.proc.poll() is None

    def describe(self) -> str:
        """A paragraph for assertion messages: state plus the log tail."""
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return f"nameserverd in {self.netns} ({state}); its log:\n{self.log()[-4000:]}"

    def stop(self) -> None:
        """SIGTERM and wait: the contract is exit status 0 and no process left behind.

        Raises DaemonError when the daemon needs SIGKILL, exits non-zero or leaves workers
        running (they share its process group, which the harness made for it).
        """
        problems: list[str] = []
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"did not exit within {STOP_TIMEOUT}s of SIGTERM")
        if not problems and self.proc.returncode != 0:
            problems.append(f"exited with status {self.proc.returncode} after SIGTERM")
        if self._group_lingers():
            problems.append("left processes of its group running after the main one exited")
        self._kill_group()
        if problems:
            raise DaemonError("nameserverd " + "; ".join(problems) + "\n" + self.describe())

    def _group_lingers(self, grace: float = 3.0) -> bool:
        """Whether members of the daemon's process group outlive it by more than ``grace``.

        Workers may take a moment to finish after the master returned; this waits for that
        condition (it is not a synchronisation sleep: there is no signal for "group empty").
        """
        deadline = time.monotonic() + grace
        while True:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return False
            if time.monotonic() > deadline:
                return True
            time.sleep(0.05)

    def _kill_group(self) -> None:
        """SIGKILL whatever is left of the process group this harness started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.notify.close()


def start_daemon(netns: str, config: Path, workdir: Path, port: int) -> Daemon:
    """Start ``nameserverd --config CONFIG`` inside ``netns`` and return once it is READY.

    ``workdir`` receives the notify socket and the log. On failure the process group is killed
    and DaemonError carries the reason and the daemon's output.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    notify = NotifyEndpoint(workdir / "notify.sock")
    log_path = workdir / "nameserverd.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    argv = netns_argv(netns, [str(daemon_executable()), "--config", str(config)])
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: workers can be found and reaped
            )
    except BaseException:
        notify.close()
        raise
    daemon = Daemon(proc=proc, log_path=log_path, port=port, netns=netns, notify=notify)
    try:
        problem = notify.wait_ready(proc, READY_TIMEOUT)
    except BaseException:
        daemon._kill_group()
        raise
    if problem is not None:
        daemon._kill_group()
        raise DaemonError(f"nameserverd {problem}\n{daemon.describe()}")
    return daemon


@contextlib.contextmanager
def running_daemon(netns: str, config: Path, workdir: Path, port: int) -> Iterator[Daemon]:
    """``start_daemon`` for a ``with`` block; the daemon is stopped (and checked) on exit."""
    daemon = start_daemon(netns, config, workdir, port)
    try:
        yield daemon
    except BaseException:
        # The block's own failure is the news; a stop problem must not mask it.
        with contextlib.suppress(DaemonError):
            daemon.stop()
        raise
    daemon.stop()


def start_for_mode(topo: Topology, mode: str, workdir: Path, port: int) -> Daemon:
    """Start a daemon for ``mode`` on ``port``; on failure fail the test with the daemon's log."""
    config = write_config(workdir / "nameserverd.yaml", port=port, ipv6_only=MODES[mode])
    try:
        return start_daemon(topo.server, config, workdir, port)
    except DaemonError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except: no "during handling" echo
