"""The two servers under comparison, started from the same zone files on loopback ports.

Knot DNS (Debian's ``knot`` 3.2) is the reference: a config written into a temporary folder,
listening on 127.0.0.1 and ::1 only, with no remotes, no NOTIFY, no signing (the signed zones
are served exactly as committed), no zone file sync and no journal. One UDP and one TCP
worker, so replies on a socket come in the order of the queries (``wire.py`` relies on that to
see a non-reply without a timeout). Readiness is each zone's SOA answered with AA, polled with
real queries under a deadline, never a sleep.

nameserverd is started as the integration suite starts it (``tests/integration/daemon.py``:
READY=1 on NOTIFY_SOCKET), here in the root network namespace, on ``::``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import yaml
from integration.daemon import (
    READY_TIMEOUT,
    Daemon,
    DaemonError,
    NotifyEndpoint,
    daemon_executable,
    write_config,
)

ZONE_DIR = Path(__file__).parent / "zones"
ZONES: dict[str, str] = {
    "example.": "example.zone",
    "child.example.": "child.example.zone",
    "nsec.test.": "nsec.test.zone.signed",
    "nsec3.test.": "nsec3.test.zone.signed",
    "optout.test.": "optout.test.zone.signed",
}
"""Zone origin -> file under ``zones/``; both servers serve exactly these."""

IDENTITY = {"identity": "ns1.conformance.test", "version": "conformance 1", "nsid": "ns1-conf"}
"""What the "identity" profile tells about both servers (CH TXT and NSID)."""
PROFILES: dict[str, dict[str, str]] = {
    "hidden": {"identity": "", "version": "", "nsid": ""},
    "identity": IDENTITY,
}
"""Profile -> server identity settings. Empty means hidden: Knot's defaults are the hostname
and its version, so "hidden" must say so explicitly; nameserverd hides them unless set."""

KNOT_READY_TIMEOUT = 10.0
KNOT_STOP_TIMEOUT = 10.0


def knotd_path() -> str | None:
    """``knotd`` from PATH, or from /usr/sbin where Debian puts it (not in every user's PATH)."""
    return shutil.which("knotd") or shutil.which("knotd", path="/usr/sbin:/usr/local/sbin")


def knot_config(workdir: Path, port: int, profile: str = "hidden") -> str:
    """The Knot 3.2 configuration: loopback only, everything it writes inside ``workdir``.

    With ``identity``, ``version`` and ``nsid`` empty (the "hidden" profile) Knot REFUSES
    CH TXT id.server and version.bind and ignores an NSID request; left unset, Knot would
    answer with the host name and "Knot DNS 3.2.6".
    """
    identity = PROFILES[profile]
    zones = "\n".join(
        f"  - domain: {origin}\n    file: {ZONE_DIR / file}" for origin, file in ZONES.items()
    )
    return f"""\
server:
    rundir: {workdir}
    listen: [ 127.0.0.1@{port}, ::1@{port} ]
    identity: "{identity["identity"]}"
    version: "{identity["version"]}"
    nsid: "{identity["nsid"]}"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {workdir / "db"}
control:
    listen: {workdir / "knot.sock"}
log:
  - target: stderr
    any: info
template:
  - id: default
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    dnssec-signing: off
zone:
{zones}
"""


def _zone_answers(port: int, origin: str) -> bool:
    """Whether ``origin``'s SOA comes back authoritative: the zone is loaded and served."""
    query = dns.message.make_query(origin, "SOA", use_edns=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        try:
            reply = dns.message.from_wire(sock.recv(65535))
        except (TimeoutError, ConnectionRefusedError, dns.exception.DNSException):
            return False
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.flags & dns.flags.AA)


class PortTaken(RuntimeError):
    """knotd could not bind its port: someone took it between our check and its bind."""


@dataclass
class Knot:
    """A running knotd and its log."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers: the reference's exit status is not under test."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=KNOT_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_knot(workdir: Path, port: int, profile: str = "hidden") -> Knot:
    """Start knotd on ``port`` and return once every zone answers; raise with its log if not."""
    knotd = knotd_path()
    if knotd is None:
        raise FileNotFoundError("knotd is not installed (apt-get install knot)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "knot.conf"
    config.write_text(knot_config(workdir, port, profile))
    log_path = workdir / "knotd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [knotd, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    knot = Knot(proc, port, log_path)
    deadline = time.monotonic() + KNOT_READY_TIMEOUT
    pending = list(ZONES)
    while pending and knot.alive() and time.monotonic() < deadline:
        pending = [origin for origin in pending if not _zone_answers(port, origin)]
    if pending:
        knot.stop()
        if "address already in use" in knot.log():
            raise PortTaken(f"port {port} was taken")
        state = "running" if knot.alive() else f"exited with {proc.returncode}"
        raise RuntimeError(
            f"knotd ({state}) did not serve {pending} within {KNOT_READY_TIMEOUT}s; "
            f"its log:\n{knot.log()[-4000:]}"
        )
    return knot


def nameserverd_config(workdir: Path, port: int, profile: str = "hidden") -> Path:
    """A nameserverd YAML config serving the same zone files, on ``::`` (dual-stack).

    ``integration.daemon.write_config`` writes the listening part and the zones; the identity
    settings of the profile are added to its ``server`` section.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    zones = {origin: ZONE_DIR / file for origin, file in ZONES.items()}
    path = write_config(workdir / "nameserverd.yaml", port=port, ipv6_only=False, zones=zones)
    document = yaml.safe_load(path.read_text())
    document["server"].update({key: value for key, value in PROFILES[profile].items() if value})
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def start_nameserverd(config: Path, workdir: Path, port: int) -> Daemon:
    """Start nameserverd in this (the root) network namespace and return once it is READY.

    ``integration.daemon.start_daemon`` always prefixes ``ip netns exec``; this is the same
    start without it, reusing its notify endpoint, its Daemon (stop = SIGTERM and exit 0
    required) and its executable lookup.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    notify = NotifyEndpoint(workdir / "notify.sock")
    log_path = workdir / "nameserverd.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "PYTHONUNBUFFERED": "1"}
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(daemon_executable()), "--config", str(config)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
    except BaseException:
        notify.close()
        raise
    daemon = Daemon(proc=proc, log_path=log_path, port=port, netns="(root)", notify=notify)
    try:
        problem = notify.wait_ready(proc, READY_TIMEOUT)
    except BaseException:
        daemon._kill_group()
        raise
    if problem is not None:
        daemon._kill_group()
        raise DaemonError(f"nameserverd {problem}\n{daemon.describe()}")
    return daemon
