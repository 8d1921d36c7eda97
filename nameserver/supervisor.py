"""The supervisor: the process an operator or systemd starts, which serves through workers.

It opens the sockets once and forks workers that inherit them, gunicorn's arbiter in shape:
binding happens before privileges are dropped, so a worker replaced later needs no right to
bind port 53, and a reload never re-binds, so no datagram queued in a socket is lost. A reload
(SIGHUP) loads the configuration and zones in the supervisor; only when all of it loads does a
new generation of workers start, forked with the new data, and the old ones finish and leave.
A load that fails leaves the old workers serving.

Signal handlers only queue the signal; the main loop handles it (``handle_<name>``).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import grp
import logging
import os
import pwd
import queue
import select
import signal
import time
from collections import Counter
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from nameserver import logs, metrics, systemd
from nameserver.config import Config, LoadError, ServerSettings, load_config
from nameserver.logs import QueryLog
from nameserver.net import pktinfo
from nameserver.net.listeners import Endpoint
from nameserver.responder import Responder
from nameserver.server import Server
from nameserver.zones import ZoneSet, load_zones

log = logging.getLogger(__name__)

# A worker that could not even start says so with this exit status; respawning it would only
# fail again, so the supervisor stops instead (gunicorn's WORKER_BOOT_ERROR).
WORKER_BOOT_ERROR = 3
# How long stopping workers may finish what they are doing before they are killed.
GRACEFUL_TIMEOUT = 5.0
_TICK = 1.0
_HANDLED = ("HUP", "TERM", "INT", "CHLD", "USR1")


@dataclass(frozen=True)
class Generation:
    """What one set of workers serves: they are forked with it and keep it for life.

    The responder (the zones' indexes and its answer cache) is built here, before the fork, so
    that a new worker answers from its first instruction instead of spending a second indexing
    while nobody serves, and the indexes are shared copy-on-write instead of built per worker.
    """

    number: int
    config: Config
    zones: ZoneSet
    responder: Responder

    @classmethod
    def build(cls, number: int, config: Config, zones: ZoneSet) -> Generation:
        return cls(number, config, zones, Responder(zones, config.server))

    def status(self) -> str:
        return ", ".join(f"{hosted.origin} serial {hosted.serial}" for hosted in self.zones)


class Supervisor:
    def __init__(
        self, config: Config, zones: ZoneSet, endpoints: list[Endpoint], layout: pktinfo.Layout
    ) -> None:
        self.generation = Generation.build(1, config, zones)
        self.endpoints = endpoints
        self.layout = layout
        self.workers: dict[int, int] = {}  # pid -> generation number
        self.reloads: Counter[str] = Counter()
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stopping = False
        self._exit_status = 0
        self.totals = metrics.Totals()
        self._reports: dict[int, int] = {}  # read end of a worker's metrics pipe -> its pid
        self._http: WSGIServer | None = None

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status of the whole server."""
        wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (wakeup_read, wakeup_write)
        signal.set_wakeup_fd(wakeup_write)
        for name in _HANDLED:
            signal.signal(getattr(signal, f"SIG{name}"), self._queue_signal)
        self._serve_metrics()
        self._spawn_missing()
        systemd.notify(f"READY=1\nSTATUS=serving {self.generation.status()}")
        log.info("serving %s with %d worker(s)", self.generation.status(), self._wanted())
        while not self._stopping:
            self._wait_for_signal()
            self._spawn_missing()
        systemd.notify("STOPPING=1")
        self._stop_workers(list(self.workers))
        os.close(wakeup_read)
        os.close(wakeup_write)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        return self._exit_status

    def _serve_metrics(self) -> None:
        listen = self.generation.config.metrics.listen
        if listen is None:
            return
        registry = CollectorRegistry()
        registry.register(metrics.Collector(self.totals, self._state))
        self._http, _thread = start_http_server(listen[1], listen[0], registry)
        log.info("metrics on http://%s/metrics", _host_port(*listen))

    def _state(self) -> metrics.ServerState:
        """What the supervisor itself reports; called from the metrics HTTP thread."""
        generation = self.generation
        current = sum(1 for n in list(self.workers.values()) if n == generation.number)
        zones = [(str(z.origin), z.serial, z.records) for z in generation.zones]
        return metrics.ServerState(zones, self.reloads, current)

    def _queue_signal(self, signum: int, _frame: object) -> None:
        # Nothing else here: the loop does the work, outside any interrupted call.
        self._signals.put_nowait(signum)

    def _wait_for_signal(self) -> None:
        """Sleep until a signal or a worker's report arrives, at most a tick."""
        readable, _, _ = select.select([self._wakeup[0], *self._reports], [], [], _TICK)
        for fd in readable:
            if fd in self._reports:
                self._read_report(fd)
        try:
            while os.read(self._wakeup[0], 64):
                pass
        except BlockingIOError:
            pass
        while not self._signals.empty():
            name = signal.Signals(self._signals.get_nowait()).name.removeprefix("SIG")
            getattr(self, f"handle_{name.lower()}")()

    def handle_hup(self) -> None:
        """Reload configuration and zones; only a complete load replaces what is served."""
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={now_usec}")
        current = self.generation
        try:
            config = load_config(current.config.path)
            zones = load_zones(config.zones, config.server.cache_dir, current.zones)
        except LoadError as error:
            self.reloads["failure"] += 1
            for line in error.errors:
                log.error("reload failed: %s", line)
            log.error("reload failed: still serving %s", current.status())
            systemd.notify(f"READY=1\nSTATUS=reload failed, serving {current.status()}")
            return
        try:
            logs.configure(config.log)
        except OSError as error:
            log.error("reload: cannot open the new log file, keeping the old one: %s", error)
        if _listening(config.server) != _listening(current.config.server):
            log.warning("listen, port and ipv6_only changes take effect at the next restart")
        self.reloads["success"] += 1
        self.generation = Generation.build(current.number + 1, config, zones)
        old = [pid for pid, number in self.workers.items() if number != self.generation.number]
        self._spawn_missing()
        self._stop_workers(old)
        log.info("reloaded: serving %s", self.generation.status())
        systemd.notify(f"READY=1\nSTATUS=serving {self.generation.status()}")

    def handle_usr1(self) -> None:
        """Reopen the log file (logrotate's postrotate), here and in every worker."""
        logs.reopen()
        for pid in list(self.workers):
            _signal(pid, signal.SIGUSR1)

    def handle_term(self) -> None:
        log.info("SIGTERM received, stopping")
        self._stopping = True

    def handle_int(self) -> None:
        log.info("SIGINT received, stopping")
        self._stopping = True

    def handle_chld(self) -> None:
        """Reap every worker that ended; the loop replaces those of the current generation."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            number = self.workers.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            if number is None or self._stopping:
                continue
            if code == WORKER_BOOT_ERROR:
                log.error("worker %d could not start; stopping", pid)
                self._stopping = True
                self._exit_status = 1
            elif number == self.generation.number:
                log.warning("worker %d ended (%s); starting another", pid, _describe(code))

    def _read_report(self, fd: int) -> None:
        """Take what a worker's pipe holds; at its end the worker's totals are final."""
        pid = self._reports[fd]
        try:
            while data := os.read(fd, 65536):
                self.totals.feed(pid, data)
        except BlockingIOError:
            return
        self.totals.ended(pid)
        del self._reports[fd]
        os.close(fd)

    def _wanted(self) -> int:
        return self.generation.config.server.workers

    def _spawn_missing(self) -> None:
        if self._stopping:
            return
        current = [n for n in self.workers.values() if n == self.generation.number]
        for _ in range(self._wanted() - len(current)):
            report_read, report_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            # Out of the collector's sight, the shared zone data is never written by a
            # collection, so its pages stay shared with the worker instead of being copied.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                os.close(report_read)
                self._be_worker(report_write)
            os.close(report_write)
            self._reports[report_read] = pid
            self.workers[pid] = self.generation.number

    def _be_worker(self, report: int) -> None:
        """The child side of a fork; never returns. ``report`` is its metrics pipe."""
        status = WORKER_BOOT_ERROR
        try:
            signal.set_wakeup_fd(-1)
            for fd in (*self._wakeup, *self._reports):
                os.close(fd)
            if self._http is not None:
                self._http.socket.close()
            for name in _HANDLED:
                signal.signal(getattr(signal, f"SIG{name}"), signal.SIG_DFL)
            # Reloads are the supervisor's business; a worker keeps the data it was born with.
            # USR1 (reopen logs) waits for the server loop's own handler.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            generation = self.generation
            server = Server(
                self.endpoints,
                generation.responder,
                self.layout,
                metrics.snapshot_sender(report),
                QueryLog(generation.config.log.queries),
                udp_batch=generation.config.server.udp_batch,
            )
            status = 1
            server.run()
            server.close()
            status = 0
        except BaseException:
            log.exception("worker failed")
        finally:
            logging.shutdown()
            os._exit(status)

    def _stop_workers(self, pids: list[int]) -> None:
        """SIGTERM, then SIGKILL whoever has not finished within the grace period.

        Each worker is watched through a pidfd, which becomes readable when it exits.
        """
        watched: dict[int, int] = {}
        for pid in pids:
            _signal(pid, signal.SIGTERM)
            try:
                watched[os.pidfd_open(pid)] = pid
            except ProcessLookupError:
                self.workers.pop(pid, None)
        deadline = time.monotonic() + GRACEFUL_TIMEOUT
        while watched and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(watched), [], [], left)
            for fd in ready:
                self._reap(watched.pop(fd))
                os.close(fd)
        for fd, pid in watched.items():
            log.warning("worker %d did not stop in time; killing it", pid)
            _signal(pid, signal.SIGKILL)
            self._reap(pid, block=True)
            os.close(fd)

    def _reap(self, pid: int, block: bool = False) -> None:
        with contextlib.suppress(ChildProcessError):  # the SIGCHLD handler was first
            os.waitpid(pid, 0 if block else os.WNOHANG)
        self.workers.pop(pid, None)


def drop_privileges(settings: ServerSettings) -> None:
    """Become ``server.user``/``server.group`` when started as root; the sockets stay open."""
    if settings.user is None and settings.group is None:
        return
    if os.geteuid() != 0:
        log.warning("not started as root: ignoring server.user and server.group")
        return
    user = pwd.getpwnam(settings.user) if settings.user is not None else None
    gid = grp.getgrnam(settings.group).gr_gid if settings.group is not None else None
    if gid is None and user is not None:
        gid = user.pw_gid
    os.setgroups([])
    if gid is not None:
        os.setgid(gid)
    if user is not None:
        os.setuid(user.pw_uid)
    log.info("running as uid %d gid %d", os.getuid(), os.getgid())


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listening(settings: ServerSettings) -> tuple[object, ...]:
    return settings.listen, settings.port, settings.ipv6_only


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError as error:
        if error.errno != errno.ESRCH:
            raise


def _describe(code: int) -> str:
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
