"""``nameserverd``: the command line, and the order in which a server comes up.

Configuration and every zone are loaded and checked before any socket is opened, so a broken
file stops the start with its file and line instead of serving half the data.
"""

from __future__ import annotations

import argparse
import logging
import sys

from nameserver import __version__, logs
from nameserver.config import Config, LoadError, LogSettings, load_config
from nameserver.net import pktinfo
from nameserver.net.listeners import open_endpoints
from nameserver.supervisor import Supervisor, drop_privileges
from nameserver.zones import ZoneSet, load_zones

log = logging.getLogger("nameserverd")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(LogSettings())
    try:
        config = load_config(args.config)
        zones = load_zones(config.zones, config.server.cache_dir)
    except LoadError as error:
        for line in error.errors:
            print(line, file=sys.stderr)
        return 1
    if args.check:
        print(_describe(config, zones))
        return 0
    try:
        logs.configure(config.log)
    except OSError as error:
        log.error("cannot open the log file: %s", error)
        return 1
    return _serve(config, zones)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nameserverd",
        description="Authoritative DNS server that answers from the address it was asked on.",
    )
    parser.add_argument("--config", required=True, help="path of the YAML configuration")
    parser.add_argument(
        "--check",
        action="store_true",
        help="load and validate the configuration and every zone, print them and exit",
    )
    parser.add_argument("--version", action="version", version=f"nameserverd {__version__}")
    return parser


def _describe(config: Config, zones: ZoneSet) -> str:
    lines = [f"{config.path}: ok, {len(zones)} zone(s)"]
    lines += [
        f"  {hosted.origin} serial {hosted.serial}, {hosted.records} records ({hosted.file})"
        for hosted in zones
    ]
    return "\n".join(lines)


def _serve(config: Config, zones: ZoneSet) -> int:
    layout = pktinfo.layout_for()
    settings = config.server
    try:
        endpoints = open_endpoints(settings.listen, settings.port, settings.ipv6_only, layout)
    except OSError as error:
        log.error("%s", error.strerror or error)
        return 1
    try:
        for endpoint in endpoints:
            log.info("listening on %s", endpoint.name)
        drop_privileges(settings)
        status = Supervisor(config, zones, endpoints, layout).run()
    except OSError as error:
        log.error("cannot become %s: %s", settings.user or settings.group, error)
        return 1
    finally:
        for endpoint in endpoints:
            endpoint.sock.close()
    log.info("stopped")
    return status
