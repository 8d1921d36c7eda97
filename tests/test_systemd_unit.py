"""The shipped systemd unit, checked with systemd's own tools rather than by eye.

A unit file fails quietly: systemd ignores an unknown key or a bad value with one line in the
journal and starts the service anyway, less sandboxed than intended. ``systemd-analyze verify``
reports those lines and ``systemd-analyze security`` scores the sandbox, so both run here on
every CI run; the directives the service relies on are also checked by name, because a unit
can verify clean and score well while no longer being ``Type=notify`` or reloadable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "nameserverd.service"
# Where the unit expects the package (README: "Install the package into /opt/nameserverd").
INSTALLED = "/opt/nameserverd/bin/nameserverd"
# systemd-analyze security's "exposure level": 0 is locked down, 10 is unprotected.
MAX_EXPOSURE = 3.0
# A verify line that starts with a unit file's path or a unit's name, then a colon.
_UNIT_TYPES = "service|socket|device|mount|automount|swap|target|path|timer|slice|scope"
_NAMES_A_UNIT = re.compile(rf"(\S+?\.(?:{_UNIT_TYPES})):")

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is missing (Debian package systemd; .ci/run installs it)",
)


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--no-pager", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_COLORS": "0", "LC_ALL": "C"},
        timeout=60,
    )


def _directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value assigned to it, in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def _installed_here(unit_text: str) -> str:
    """The unit with its executable moved from /opt/nameserverd to this environment's.

    ``verify`` checks that every ``Exec*=`` command exists, and nothing is installed in
    /opt/nameserverd on a development machine. Only that prefix changes; ``/bin/kill`` and
    everything else is checked as shipped.
    """
    here = Path(sys.executable).parent / "nameserverd"
    if not here.exists():
        found = shutil.which("nameserverd")
        assert found, "nameserverd is not installed in this environment (pip install -e .)"
        here = Path(found)
    assert INSTALLED in unit_text, f"the unit no longer runs {INSTALLED}; update this test"
    return unit_text.replace(INSTALLED, str(here))


def _about_another_unit(line: str, ours: Path) -> bool:
    """Whether a ``verify`` line names a unit file or unit other than ours.

    Loading our unit loads its dependencies (network.target, multi-user.target, ...) from the
    host, and a host's own broken units draw warnings that say nothing about ours (with the
    default ``--recursive-errors=yes`` they are printed). Such lines start with
    that unit's file (``/usr/lib/systemd/system/x.service:3: ...``) or name
    (``x.service: ...``). A line that names no unit is kept: it may be about ours.
    """
    match = _NAMES_A_UNIT.match(line)
    if match is None:
        return False
    named = match.group(1)
    return named not in (str(ours), ours.name)


@needs_systemd_analyze
def test_security_exposure_is_at_most_3() -> None:
    """``systemd-analyze security`` scores the shipped file itself (offline: no running
    manager, and it does not look at executables)."""
    result = _analyze("security", "--offline=true", str(UNIT))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure in systemd-analyze's output:\n{output}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"


@needs_systemd_analyze
def test_verify_is_clean(tmp_path: Path) -> None:
    """Every key known and every value parsed, and every command there to run.

    systemd itself only logs an unknown key or a bad value and starts the unit anyway;
    ``verify`` prints it and exits 1. ``--recursive-errors=no`` keeps the host's other units
    (our dependencies) out of the exit status, and their lines, should any be printed, out
    of the verdict; every other line fails the test as well as the status does.
    """
    unit = tmp_path / UNIT.name
    unit.write_text(_installed_here(UNIT.read_text()))
    result = _analyze("verify", "--recursive-errors=no", str(unit))
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if not _about_another_unit(line, unit)]
    ours = [line for line in ours if line.strip()]
    assert result.returncode == 0 and not ours, (
        f"systemd-analyze verify (exit {result.returncode}):\n{output}"
    )


def test_the_directives_the_daemon_relies_on() -> None:
    """What the daemon's behaviour assumes, which neither verify nor security checks."""
    found = _directives(UNIT.read_text())

    def last(key: str) -> str | None:
        values = found.get(f"Service.{key}")
        return values[-1] if values else None

    # It sends READY=1 itself once the sockets are open and the zones loaded.
    assert last("Type") == "notify"
    # Only the supervisor notifies; its workers must not be able to change the state.
    assert last("NotifyAccess") == "main"
    # A reload is SIGHUP to the supervisor.
    reload = last("ExecReload") or ""
    assert re.fullmatch(r"\S*kill (-HUP|-s HUP|--signal HUP) \$MAINPID", reload), reload
    # Port 53 as an unprivileged user: the capability, and a user that is not root.
    assert last("AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert last("CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    user = last("User")
    assert last("DynamicUser") == "yes" or (user is not None and user not in ("root", "0"))
    # A bad configuration fails the start with file and line, before anything is bound.
    assert any(value.endswith(" --check") for value in found.get("Service.ExecStartPre", []))
    # SIGTERM to the supervisor alone: it stops its workers itself (a 5 s grace), and
    # a graceful stop takes seconds, not the default minute and a half.
    assert last("KillMode") == "mixed"
    timeout = re.fullmatch(r"(\d+)s?", last("TimeoutStopSec") or "")
    assert timeout and 5 < int(timeout.group(1)) <= 30, last("TimeoutStopSec")
