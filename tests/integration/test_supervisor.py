"""The process model: workers, a worker's death, reload (SIGHUP), privileges, a failed start.

Readiness after a reload is the daemon's own RELOADING=1 ... READY=1 on NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from . import netns
from .checks import assert_authoritative
from .clients import CLIENTS, Target
from .daemon import EXAMPLE_ZONE, MODES, Daemon, DaemonError, running_daemon, write_config
from .netns import run_in_netns
from .zonedata import WWW, WWW_A

PORT = 5303
RELOAD_TIMEOUT = 10.0
NEW_ADDRESS = "192.0.2.181"


def children(pid: int) -> set[int]:
    """The worker processes: the daemon's direct children."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # the effective uid
    raise AssertionError(f"no Uid line for {pid}")


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll for a state the daemon announces nowhere (a new child process), bounded."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)


def www(daemon: Daemon, topology: netns.Topology, expected: set[str], times: int = 1) -> None:
    target = Target(topology.server, netns.V4_ALIASES[0], PORT, netns.V4_PRIMARY)
    for _ in range(times):
        reply = CLIENTS["dnspython"].ask(target, WWW, "A")
        assert_authoritative(reply, target, WWW, "A", expected)


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    """A copy of the suite's zone that a test may rewrite before a reload."""
    path = tmp_path / "example.com.zone"
    path.write_text(EXAMPLE_ZONE.read_text())
    return path


def config_for(tmp_path: Path, mode: str, zone: Path, **server: object) -> Path:
    return write_config(
        tmp_path / "nameserverd.yaml",
        port=PORT,
        ipv6_only=MODES[mode],
        zones={"example.com.": zone},
        **server,
    )


def reload(daemon: Daemon) -> dict[str, str]:
    """SIGHUP, then the READY=1 that ends the reload (its STATUS says what is served)."""
    mark = len(daemon.notify.messages)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1", mark, RELOAD_TIMEOUT)
    return daemon.notify.wait_for("READY", "1", mark, RELOAD_TIMEOUT)


def test_workers_answer_together(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    config = config_for(tmp_path, mode, zone, workers=2)
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        assert len(children(daemon.proc.pid)) == 2
        www(daemon, topology, WWW_A, times=50)


def test_a_killed_worker_is_replaced_within_a_second(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    config = config_for(tmp_path, mode, zone, workers=2)
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        before = children(daemon.proc.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(children(daemon.proc.pid) - {victim}) == 2, 1.0, "a replacement worker"
        )
        www(daemon, topology, WWW_A, times=10)


def test_sighup_serves_the_changed_zone_from_every_worker(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    config = config_for(tmp_path, mode, zone, workers=2)
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        old_workers = children(daemon.proc.pid)
        zone.write_text(
            zone.read_text().replace("2026112501", "2026112502").replace("192.0.2.80", NEW_ADDRESS)
        )
        ready = reload(daemon)
        assert "serial 2026112502" in ready.get("STATUS", ""), ready
        assert not children(daemon.proc.pid) & old_workers, "the old generation still serves"
        www(daemon, topology, {NEW_ADDRESS}, times=20)


def test_sighup_keeps_an_unchanged_zone_as_it_is(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    """A reload compiles only the zones whose files changed; the others are kept as loaded."""
    config = config_for(tmp_path, mode, zone, workers=1)
    with config.open("a") as text:
        text.write("log:\n  level: debug\n")
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        ready = reload(daemon)
        assert "serial 2026112501" in ready.get("STATUS", ""), ready
        assert "zone example.com. unchanged" in daemon.log(), daemon.log()
        www(daemon, topology, WWW_A, times=4)


def test_a_failed_reload_keeps_the_old_data_and_names_the_line(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    config = config_for(tmp_path, mode, zone, workers=2)
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        workers = children(daemon.proc.pid)
        lines = zone.read_text().splitlines()
        zone.write_text("\n".join([*lines, "broken IN A not-an-address", ""]))
        ready = reload(daemon)
        assert "reload failed" in ready.get("STATUS", ""), ready
        assert f"{zone}:{len(lines) + 1}:" in daemon.log(), daemon.log()
        assert children(daemon.proc.pid) == workers
        www(daemon, topology, WWW_A, times=10)


def test_started_as_root_every_process_runs_as_the_configured_user(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    nobody = pwd.getpwnam("nobody")
    config = config_for(tmp_path, mode, zone, workers=2, user="nobody")
    # The unprivileged supervisor must reach the notify socket: pytest's own folders are
    # private to root, so the daemon's working folder goes where anyone may traverse.
    workdir = Path(tempfile.mkdtemp(prefix="nameserverd-user-"))
    workdir.chmod(0o755)
    try:
        with running_daemon(topology.server, config, workdir, PORT) as daemon:
            for pid in (daemon.proc.pid, *children(daemon.proc.pid)):
                assert uid_of(pid) == nobody.pw_uid, pid
            www(daemon, topology, WWW_A)
    finally:
        shutil.rmtree(workdir)


def test_a_taken_port_stops_the_start_once(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    def occupy() -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", PORT))
        return sock

    with (
        run_in_netns(topology.server, occupy),
        pytest.raises(DaemonError, match="exited with status 1 before READY") as failure,
        running_daemon(topology.server, config_for(tmp_path, mode, zone), tmp_path, PORT),
    ):
        pass
    assert "Address already in use" in str(failure.value)


METRICS_PORT = 9353


def scrape(topology: netns.Topology) -> dict[str, float]:
    """/metrics inside the server namespace, as {sample line without value: value}."""

    def fetch() -> str:
        url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    samples = {}
    for line in run_in_netns(topology.server, fetch).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def total(samples: dict[str, float], prefix: str) -> float:
    return sum(value for name, value in samples.items() if name.startswith(prefix))


def test_metrics_add_up_across_workers(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    """Every answered query is counted once, whichever worker answered it; reloads too."""
    config = write_config(
        tmp_path / "nameserverd.yaml",
        port=PORT,
        ipv6_only=MODES[mode],
        zones={"example.com.": zone},
        workers=2,
    )
    with config.open("a") as text:
        text.write(f'metrics:\n  listen: "127.0.0.1:{METRICS_PORT}"\n')
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        www(daemon, topology, WWW_A, times=30)
        target = Target(topology.server, netns.V6_SECOND, PORT, netns.V6_FIRST)
        for _ in range(10):
            CLIENTS["dnspython"].ask(target, WWW, "AAAA", tcp=True)
        reload(daemon)  # the old generation's final reports must still count
        # Workers report about once a second: wait for the sum, bounded.
        wait_until(
            lambda: total(scrape(topology), "nameserver_queries_total") == 40,
            5.0,
            "40 queries in nameserver_queries_total",
        )
        samples = scrape(topology)
        assert total(samples, "nameserver_responses_total") == 40
        assert samples['nameserver_local_address_queries_total{address="127.0.0.53"}'] == 30
        assert samples['nameserver_local_address_queries_total{address="fd53::2"}'] == 10
        assert samples['nameserver_queries_total{family="ipv6",qtype="AAAA",transport="tcp"}'] == 10
        assert samples['nameserver_reloads_total{result="success"}'] == 1
        assert samples["nameserver_workers"] == 2
        assert samples["nameserver_query_duration_seconds_count"] == 40
        assert samples['nameserver_zone_serial{zone="example.com."}'] == 2026112501
        zone.write_text(zone.read_text() + "broken IN A not-an-address\n")
        reload(daemon)
        samples = scrape(topology)
        assert samples['nameserver_reloads_total{result="failure"}'] == 1
        assert samples['nameserver_reloads_total{result="success"}'] == 1


def test_query_log_names_the_local_address_and_survives_rotation(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    """log.queries writes one line per query to log.file; after a logrotate-style rename,
    SIGUSR1 makes every process write to a fresh file."""
    log_file = tmp_path / "queries.log"
    config = config_for(tmp_path, mode, zone, workers=2)
    with config.open("a") as text:
        text.write(f"log:\n  queries: true\n  file: {log_file}\n")
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        www(daemon, topology, WWW_A, times=4)
        wait_until(lambda: log_file.read_text().count(" query ") == 4, 5.0, "4 query lines")
        line = next(line for line in log_file.read_text().splitlines() if " query " in line)
        assert "client=127.0.0.1 local=127.0.0.53 transport=udp" in line, line
        assert f"qname={WWW} qtype=A rcode=NOERROR" in line, line
        log_file.rename(tmp_path / "queries.log.1")
        daemon.proc.send_signal(signal.SIGUSR1)
        wait_until(log_file.exists, 5.0, "the supervisor reopening its log file")
        # Workers reopen at their next loop turn, woken by the signal; from then on a whole
        # batch of queries lands in the new file, whichever worker answers.

        def a_batch_lands_in_the_new_file() -> bool:
            before = log_file.read_text().count(" query ")
            www(daemon, topology, WWW_A, times=10)
            return wait_for_count(log_file, before + 10)

        wait_until(a_batch_lands_in_the_new_file, 10.0, "every worker writing to the new file")


def wait_for_count(path: Path, count: int) -> bool:
    """Whether ``path`` reaches ``count`` query lines within a second (writes are flushed per
    line, but by other processes)."""
    try:
        wait_until(lambda: path.read_text().count(" query ") >= count, 1.0, "query lines")
    except AssertionError:
        return False
    return True


def test_notify_tells_the_service_manager_every_step(
    topology: netns.Topology, mode: str, tmp_path: Path, zone: Path
) -> None:
    """READY=1 with STATUS, RELOADING=1 with MONOTONIC_USEC, READY=1, then STOPPING=1."""
    config = config_for(tmp_path, mode, zone)
    with running_daemon(topology.server, config, tmp_path, PORT) as daemon:
        assert "serial 2026112501" in daemon.notify.messages[0].get("STATUS", "")
        mark = len(daemon.notify.messages)
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        reload(daemon)
        reloading = daemon.notify.wait_for("RELOADING", "1", mark, RELOAD_TIMEOUT)
        assert before <= int(reloading["MONOTONIC_USEC"]) <= before + 10_000_000
        mark = len(daemon.notify.messages)
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.notify.wait_for("STOPPING", "1", mark, RELOAD_TIMEOUT)
