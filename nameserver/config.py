"""YAML configuration → frozen dataclasses.

A daemon should refuse a broken configuration before it opens a socket, and the operator should be
able to fix every mistake in one edit. So loading does not stop at the first problem: it reports
each one with the file, the YAML line and the key path, the way a compiler reports errors.

The schema is the dataclasses themselves: a field whose metadata names a ``parse`` function is read
from the YAML key of the same name by that function, and its default (if any) applies when the key
is left out. Adding a setting is adding one field; a section is one dataclass and one field.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pathlib
import pwd
from collections.abc import Callable, Hashable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

import dns.exception
import dns.name
import yaml

T = TypeVar("T")

#: Turns one YAML node into a value, raising :class:`_Invalid`; the path is the config file's
#: folder, which relative paths in the file hang from.
_Parse = Callable[[yaml.Node, pathlib.Path], T]

_TAG = "tag:yaml.org,2002:"


class LoadError(Exception):
    """Every problem found while loading; ``str()`` is all of them, one per line.

    Loading goes on after the first problem so that one ``--check`` lists everything to fix.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class ConfigError(LoadError):
    """The configuration file is unusable; each error is ``CONFIGPATH:LINE: key.path: problem``."""


class _Problem(NamedTuple):
    line: int
    key: str  # relative to the node that found it; parents prefix their own key on the way up
    message: str


class _Invalid(Exception):
    """The problems found under one YAML node.

    An exception rather than a return value so that leaf parsers read as plain functions; the
    mapping and list parsers catch it per child, which is what lets every problem be collected.
    """

    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    @classmethod
    def at(cls, node: yaml.Node, message: str) -> _Invalid:
        return cls([_Problem(_line(node), "", message)])

    def under(self, key: str) -> list[_Problem]:
        return [problem._replace(key=_join(key, problem.key)) for problem in self.problems]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _join(parent: str, child: str) -> str:
    if not child:
        return parent
    if not parent or child.startswith("["):
        return parent + child
    return f"{parent}.{child}"


def _describe(node: yaml.Node) -> str:
    """Name what the operator wrote, in YAML's terms: ``port: "53"`` is a string, not a number."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = node.tag.removeprefix(_TAG)
    if kind == "null":
        return "nothing (null)"
    if kind == "str":
        return f"the string {node.value!r}"
    nouns = {"int": "integer", "float": "number", "bool": "boolean"}
    return f"the {nouns.get(kind, kind)} {node.value}"


def _child(
    problems: list[_Problem], key: str, parse: _Parse[T], node: yaml.Node, base: pathlib.Path
) -> T | None:
    """Parse one child, filing its problems under its key instead of abandoning the parent."""
    try:
        return parse(node, base)
    except _Invalid as invalid:
        problems.extend(invalid.under(key))
        return None


def _scalar(node: yaml.Node, tag: str, expected: str) -> Any:
    """Check the tag YAML resolved rather than the Python type, since ``bool`` is an ``int``."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + tag:
        return yaml.constructor.SafeConstructor().construct_object(node)
    raise _Invalid.at(node, f"expected {expected}, got {_describe(node)}")


def _boolean(node: yaml.Node, base: pathlib.Path) -> bool:
    return _scalar(node, "bool", "true or false")


def _text(node: yaml.Node, base: pathlib.Path) -> str:
    text = _scalar(node, "str", "a string")
    if not 1 <= len(text.encode()) <= 255:
        raise _Invalid.at(node, "expected 1 to 255 bytes of text (one TXT string)")
    return text


def _workers(node: yaml.Node, base: pathlib.Path) -> int:
    """``auto`` is one worker per CPU this process may run on."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "str" and node.value == "auto":
        return len(os.sched_getaffinity(0))
    count = _scalar(node, "int", "auto or a number of workers")
    if not 1 <= count <= 256:
        raise _Invalid.at(node, f"{count} workers is outside 1..256")
    return count


def _user(node: yaml.Node, base: pathlib.Path) -> str:
    name = _scalar(node, "str", "a user name")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise _Invalid.at(node, f"no user {name!r} on this system") from None
    return name


def _group(node: yaml.Node, base: pathlib.Path) -> str:
    name = _scalar(node, "str", "a group name")
    try:
        grp.getgrnam(name)
    except KeyError:
        raise _Invalid.at(node, f"no group {name!r} on this system") from None
    return name


def _udp_batch(node: yaml.Node, base: pathlib.Path) -> int:
    count = _scalar(node, "int", "a number of datagrams")
    if not 1 <= count <= 1024:
        raise _Invalid.at(node, f"{count} datagrams per batch is outside 1..1024")
    return count


def _host_port(node: yaml.Node, base: pathlib.Path) -> tuple[str, int]:
    """``127.0.0.1:9153`` or ``[::1]:9153``: where an HTTP endpoint listens."""
    text = _scalar(node, "str", "an address:port")
    host, _, port = text.rpartition(":")
    try:
        address = str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
        number = int(port)
    except ValueError:
        raise _Invalid.at(node, f"{text!r} is not an address:port like 127.0.0.1:9153") from None
    if not 1 <= number <= 65535:
        raise _Invalid.at(node, f"port {number} is outside 1..65535")
    return address, number


def _port(node: yaml.Node, base: pathlib.Path) -> int:
    port = _scalar(node, "int", "a port number")
    if not 1 <= port <= 65535:
        raise _Invalid.at(node, f"port {port} is outside 1..65535")
    return port


def _address(node: yaml.Node, base: pathlib.Path) -> str:
    """Normalise through ``ipaddress`` so that ``::0`` and ``::`` are one listener, not two."""
    text = _scalar(node, "str", "an IP address")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Invalid.at(node, f"{text!r} is not an IP address") from None


def _domain_name(node: yaml.Node, base: pathlib.Path) -> dns.name.Name:
    text = _scalar(node, "str", "a domain name")
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise _Invalid.at(node, f"{text!r} is not a domain name: {exc}") from None


def _zone_file(node: yaml.Node, base: pathlib.Path) -> pathlib.Path:
    """Resolve against the config's folder, not the cwd: the daemon may chdir before a reload."""
    path = base / _scalar(node, "str", "a file name")
    if not path.is_file():
        raise _Invalid.at(node, f"zone file {path} does not exist or is not a file")
    return path


def _cache_dir(node: yaml.Node, base: pathlib.Path) -> pathlib.Path | None:
    """``null`` is no disk cache, even under systemd's ``CacheDirectory=``."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
        return None
    path = base / _scalar(node, "str", "a folder name or null")
    if not path.is_dir():
        raise _Invalid.at(node, f"folder {path} does not exist")
    return path


def _environment_cache_dir() -> pathlib.Path | None:
    """The folder systemd made for ``CacheDirectory=`` (the first, if it names several)."""
    value = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    return pathlib.Path(value) if value else None


def _choice(*words: str) -> _Parse[str]:
    """Parser for one of a few words; the error lists them all, so it holds the fix."""
    expected = f"one of {', '.join(words)}"

    def parse(node: yaml.Node, base: pathlib.Path) -> str:
        word = _scalar(node, "str", expected)
        if word not in words:
            raise _Invalid.at(node, f"expected {expected}, got {word!r}")
        return word

    return parse


def _log_file(node: yaml.Node, base: pathlib.Path) -> pathlib.Path | None:
    """``null``, the default written out, is stderr. The folder must exist: the daemon creates
    the file, not folders, and ``--check`` should find a typo before a start does."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
        return None
    path = base / _scalar(node, "str", "a file name or null")
    if path.is_dir():
        raise _Invalid.at(node, f"{path} is a folder, not a file")
    if not path.parent.is_dir():
        raise _Invalid.at(node, f"folder {path.parent} does not exist")
    return path


def _sequence(item: _Parse[T], identity: Callable[[T], Hashable]) -> _Parse[tuple[T, ...]]:
    """Parser for a non-empty list of items, none of which may share an identity."""

    def parse(node: yaml.Node, base: pathlib.Path) -> tuple[T, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise _Invalid.at(node, f"expected a list, got {_describe(node)}")
        if not node.value:
            raise _Invalid.at(node, "expected at least one entry, got an empty list")
        problems: list[_Problem] = []
        items: list[T] = []
        first_lines: dict[Hashable, int] = {}
        for index, child in enumerate(node.value):
            value = _child(problems, f"[{index}]", item, child, base)
            if value is None:
                continue
            key = identity(value)
            if key in first_lines:
                message = f"{key} is listed twice (first at line {first_lines[key]})"
                problems.append(_Problem(_line(child), f"[{index}]", message))
            first_lines.setdefault(key, _line(child))
            items.append(value)
        if problems:
            raise _Invalid(problems)
        return tuple(items)

    return parse


def _section(cls: type[T]) -> _Parse[T]:
    """Parser for a YAML mapping whose keys are the fields of ``cls`` that name a parser."""

    def parse(node: yaml.Node, base: pathlib.Path) -> T:
        return cls(**_fields(cls, node, base))

    return parse


def _fields(cls: type, node: yaml.Node, base: pathlib.Path) -> dict[str, Any]:
    declared = {f.name: f for f in fields(cls) if "parse" in f.metadata}
    if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
        pairs = []  # "server:" with every key under it commented out: all defaults
    elif isinstance(node, yaml.MappingNode):
        pairs = node.value
    else:
        raise _Invalid.at(node, f"expected a mapping, got {_describe(node)}")
    problems: list[_Problem] = []
    values: dict[str, Any] = {}
    key_lines: dict[str, int] = {}
    for key_node, value_node in pairs:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else _describe(key_node)
        if key not in declared:
            message = f"unknown key; allowed: {', '.join(declared)}"
            problems.append(_Problem(_line(key_node), key, message))
        elif key in key_lines:
            message = f"given twice (first at line {key_lines[key]})"
            problems.append(_Problem(_line(key_node), key, message))
        else:
            key_lines[key] = _line(key_node)
            parse = declared[key].metadata["parse"]
            values[key] = _child(problems, key, parse, value_node, base)
    for name, declaration in declared.items():
        required = declaration.default is MISSING and declaration.default_factory is MISSING
        if name not in key_lines and required:
            problems.append(_Problem(_line(node), name, "required, but missing"))
    if problems:
        raise _Invalid(problems)
    return values


@dataclass(frozen=True)
class ServerSettings:
    """Where to listen, and what to say about ourselves. ``"::"`` is every address, IPv4
    included unless ``ipv6_only``."""

    listen: tuple[str, ...] = field(
        default=("::",), metadata={"parse": _sequence(_address, identity=str)}
    )
    port: int = field(default=53, metadata={"parse": _port})
    ipv6_only: bool = field(default=False, metadata={"parse": _boolean})
    # What the server tells about itself: CH TXT id.server/hostname.bind, version.bind/
    # version.server, and the EDNS NSID option (RFC 5001). Nothing unless configured, as an
    # operator who hides them from scanners expects.
    identity: str | None = field(default=None, metadata={"parse": _text})
    version: str | None = field(default=None, metadata={"parse": _text})
    nsid: str | None = field(default=None, metadata={"parse": _text})
    # Processes: a supervisor and this many workers sharing the sockets it opened.
    workers: int = field(default=1, metadata={"parse": _workers})
    # Started as root, every process drops to these after the sockets are open.
    user: str | None = field(default=None, metadata={"parse": _user})
    group: str | None = field(default=None, metadata={"parse": _group})
    # Datagrams per recvmmsg/sendmmsg call on Linux; 1 is the portable recvmsg/sendmsg loop.
    # A reply waits for its whole batch to be answered (64 cache hits: about a third of a
    # millisecond); a batch also costs the interpreter about as much as 10 queries, which a
    # bigger one shares among more (bench/README.md, "Batch size").
    udp_batch: int = field(default=64, metadata={"parse": _udp_batch})
    # Compiled zones kept across restarts, so an unchanged zone file is not compiled again.
    cache_dir: pathlib.Path | None = field(
        default_factory=_environment_cache_dir, metadata={"parse": _cache_dir}
    )


@dataclass(frozen=True)
class ZoneSettings:
    """One hosted zone: its apex and the master file it is loaded from."""

    name: dns.name.Name = field(metadata={"parse": _domain_name})
    file: pathlib.Path = field(metadata={"parse": _zone_file})


@dataclass(frozen=True)
class LogSettings:
    """What the daemon logs and where: ``file`` ``None`` is stderr, which systemd hands to the
    journal."""

    level: str = field(
        default="info", metadata={"parse": _choice("debug", "info", "warning", "error")}
    )
    format: str = field(default="text", metadata={"parse": _choice("text", "json")})
    # One line per answered query, whatever ``level`` says.
    queries: bool = field(default=False, metadata={"parse": _boolean})
    file: pathlib.Path | None = field(default=None, metadata={"parse": _log_file})


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics over HTTP, served by the supervisor; off unless ``listen`` is set."""

    listen: tuple[str, int] | None = field(default=None, metadata={"parse": _host_port})


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration file.

    Keyword-only so that optional sections (with defaults) and required ones (without) can be
    declared in any order.
    """

    path: pathlib.Path
    # A factory, so that a file without a server section reads CACHE_DIRECTORY at load time.
    server: ServerSettings = field(
        default_factory=ServerSettings, metadata={"parse": _section(ServerSettings)}
    )
    zones: tuple[ZoneSettings, ...] = field(
        metadata={"parse": _sequence(_section(ZoneSettings), identity=lambda zone: zone.name)}
    )
    log: LogSettings = field(default=LogSettings(), metadata={"parse": _section(LogSettings)})
    metrics: MetricsSettings = field(
        default=MetricsSettings(), metadata={"parse": _section(MetricsSettings)}
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check the configuration file at ``path``.

    :raises ConfigError: with every problem found, not just the first.
    """
    path = pathlib.Path(path).absolute()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        # An empty file reads as an empty mapping, which then lacks the required keys.
        root = yaml.compose(data, Loader=yaml.SafeLoader) or yaml.compose("{}", yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error(path, exc)]) from None
    try:
        return Config(path=path, **_fields(Config, root, path.parent))
    except _Invalid as invalid:
        problems = sorted(invalid.problems, key=lambda problem: problem.line)
        raise ConfigError([_format(path, problem) for problem in problems]) from None


def _yaml_error(path: pathlib.Path, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        what = ": ".join(part for part in (exc.context, exc.problem) if part)
        return f"{path}:{exc.problem_mark.line + 1}: {what}"
    # A reader error (bytes that are not text) knows an offset but no line.
    return f"{path}: {str(exc).splitlines()[0]}"


def _format(path: pathlib.Path, problem: _Problem) -> str:
    if problem.key:
        return f"{path}:{problem.line}: {problem.key}: {problem.message}"
    return f"{path}:{problem.line}: {problem.message}"
