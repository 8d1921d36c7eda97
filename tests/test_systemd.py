"""sd_notify against a fake service manager: a datagram socket we read ourselves."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from nameserver import systemd


def test_without_a_manager_nothing_is_sent() -> None:
    assert systemd.notify("READY=1", environ={}) is False


def test_message_reaches_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        assert systemd.notify("READY=1\nSTATUS=ok", environ={"NOTIFY_SOCKET": path})
        assert manager.recv(100) == b"READY=1\nSTATUS=ok"


def test_message_reaches_an_abstract_socket() -> None:
    name = f"nameserverd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        assert systemd.notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert manager.recv(100) == b"STOPPING=1"


def test_a_vanished_manager_is_reported_not_raised(tmp_path: Path) -> None:
    path = str(tmp_path / "gone")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
    assert systemd.notify("STOPPING=1", environ={"NOTIFY_SOCKET": path}) is False
