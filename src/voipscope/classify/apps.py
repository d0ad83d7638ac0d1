"""Which app is behind a flow: published address ranges and host names of call apps.

Two tables ship in ``classify/data``: ``app_networks.csv`` (address ranges: a vendor's own
list such as Zoom.txt or the Microsoft 365 endpoints, or a whole autonomous system) and
``app_names.csv`` (domain suffixes for TLS SNI and DNS answers, and tokens for the STUN
REALM and SOFTWARE attributes). Every row names the list it was copied from and the date of
that list; ``data/README.md`` says how the tables were built.

A match is evidence, not proof:

* shared clouds - Zoom, Webex, WhatsApp and Viber publish addresses inside AWS and Azure;
  an "AS" row (Meta, Discord's i3D.net, LINE, imo) covers everything that
  operator hosts, Discord's AS49544 even game servers of other companies;
* stale lists - vendors add and drop ranges every month and a table is a snapshot, so a
  capture older or newer than the ``retrieved`` date may see the app elsewhere, and a range
  may since have gone to someone else. Keep the date next to the verdict.

Lookups are longest-prefix (IPv4 and IPv6) and label-boundary suffix matches; the tables
load once, lazily, and are cached. ``load_networks`` and ``load_names`` read any table with
the same columns, for tests and for local tables.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import ipaddress
import os
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voipscope.errors import VoipscopeError

NETWORK_COLUMNS = ("cidr", "app", "service", "source", "retrieved")
NAME_COLUMNS = ("pattern", "app", "kind", "source")
# domain: a DNS suffix matched on label boundaries; realm / software: a case-insensitive
# token looked for inside the STUN REALM (0x0014) / SOFTWARE (0x8022) text.
# service: a DNS suffix like domain, naming the company behind servers that are no call
# app's (Amazon, Microsoft, Google, Apple, Steam); the arbiter reads it only for flows it
# does not call VoIP, since a call app's media and STUN also run on those clouds (Signal
# asks Google's public STUN server, Zoom relays sit in AWS).
NAME_KINDS = ("domain", "realm", "software", "service")
SUFFIX_KINDS = ("domain", "service")

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?: \(([^()]+)\))?\Z")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")

TablePath = str | os.PathLike[str] | Traversable


class AppTableError(VoipscopeError):
    """A row of an app table is malformed; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class AppMatch:
    """An app attribution and the row behind it."""

    app: str
    service: str
    source: str
    evidence: str
    matched: str = ""  # the CIDR or name pattern that matched
    retrieved: str = ""  # date of the source list; attribution ages with it


@dataclass(frozen=True, slots=True)
class NetworkRow:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    app: str
    service: str
    source: str
    retrieved: str
    retrieved_date: dt.date


@dataclass(frozen=True, slots=True)
class NameRow:
    pattern: str
    app: str
    kind: str
    source: str


# --- loading -----------------------------------------------------------------------------


def _read(path: TablePath) -> tuple[str, str]:
    """(name for messages, text). The tables are small: read whole, parse from memory."""
    if isinstance(path, str | os.PathLike):
        return os.fspath(path), Path(path).read_text(encoding="utf-8")
    return str(path), path.read_text(encoding="utf-8")


def _rows(path: TablePath, columns: Sequence[str]) -> Iterable[tuple[str, int, list[str]]]:
    name, text = _read(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != tuple(columns):
        raise AppTableError(f"{name}:1: header must be {','.join(columns)}, got {header}")
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(columns):
            raise AppTableError(
                f"{name}:{line}: {len(record)} fields, expected {len(columns)} "
                f"({','.join(columns)})"
            )
        cells = [cell.strip() for cell in record]
        for column, cell in zip(columns, cells, strict=True):
            if not cell:
                raise AppTableError(f"{name}:{line}: empty {column}")
        yield name, line, cells


def parse_retrieved(text: str) -> dt.date:
    """``2026-09-14`` or ``2026-11-23 (lookup; why the source shows no date)``."""
    m = _DATE.match(text)
    if m is None:
        raise ValueError(f"retrieved must be YYYY-MM-DD with an optional '(note)', got {text!r}")
    return dt.date.fromisoformat(m.group(1))


def load_networks(path: TablePath) -> tuple[NetworkRow, ...]:
    """Read and check an ``app_networks.csv``-shaped table; raise AppTableError on a bad row."""
    rows: list[NetworkRow] = []
    seen: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, tuple[int, str]] = {}
    for name, line, (cidr, app, service, source, retrieved) in _rows(path, NETWORK_COLUMNS):
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise AppTableError(f"{name}:{line}: bad cidr {cidr!r}: {exc}") from None
        try:
            when = parse_retrieved(retrieved)
        except ValueError as exc:
            raise AppTableError(f"{name}:{line}: {exc}") from None
        if network in seen:
            first, other = seen[network]
            what = "conflicts with" if other != app else "repeats"
            raise AppTableError(f"{name}:{line}: {network} ({app}) {what} line {first} ({other})")
        seen[network] = (line, app)
        rows.append(NetworkRow(network, app, service, source, retrieved, when))
    return tuple(rows)


def _check_domain(pattern: str) -> str | None:
    if pattern != pattern.lower():
        return "must be lower case"
    labels = pattern.split(".")
    if len(labels) < 2:
        return "must have at least two labels"
    for label in labels:
        if not _LABEL.match(label):
            return f"bad label {label!r}"
    return None


def load_names(path: TablePath) -> tuple[NameRow, ...]:
    """Read and check an ``app_names.csv``-shaped table; raise AppTableError on a bad row."""
    rows: list[NameRow] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for name, line, (pattern, app, kind, source) in _rows(path, NAME_COLUMNS):
        if kind not in NAME_KINDS:
            raise AppTableError(f"{name}:{line}: kind must be one of {NAME_KINDS}, got {kind!r}")
        if kind in SUFFIX_KINDS:
            problem = _check_domain(pattern)
            if problem is not None:
                raise AppTableError(f"{name}:{line}: domain pattern {pattern!r} {problem}")
        else:
            pattern = pattern.lower()
        # A suffix is a call app's or a service's, never both: one key for the two kinds.
        key = ("suffix" if kind in SUFFIX_KINDS else kind, pattern)
        if key in seen:
            first, other = seen[key]
            what = "conflicts with" if other != app else "repeats"
            raise AppTableError(
                f"{name}:{line}: {kind} {pattern!r} ({app}) {what} line {first} ({other})"
            )
        seen[key] = (line, app)
        rows.append(NameRow(pattern, app, kind, source))
    return tuple(rows)


# --- indexes -----------------------------------------------------------------------------


class NetworkIndex:
    """Longest-prefix match over CIDR rows, flattened into disjoint sorted intervals.

    CIDR blocks are either nested or disjoint, so one sweep turns them into intervals that
    each carry the innermost (longest) prefix; a lookup is then one bisect per address.
    """

    __slots__ = (
        "_cidrs",
        "_ends4",
        "_ends6",
        "_rows",
        "_rows4",
        "_rows6",
        "_starts4",
        "_starts6",
    )

    def __init__(self, rows: Iterable[NetworkRow]) -> None:
        self._rows: tuple[NetworkRow, ...] = tuple(rows)
        # str() of an IPv6 network is slow; render each CIDR once.
        self._cidrs: tuple[str, ...] = tuple(str(r.network) for r in self._rows)
        self._starts4, self._ends4, self._rows4 = self._flatten(4)
        self._starts6, self._ends6, self._rows6 = self._flatten(6)

    @property
    def rows(self) -> tuple[NetworkRow, ...]:
        return self._rows

    def _flatten(self, version: int) -> tuple[list[int], list[int], list[int]]:
        blocks = sorted(
            (
                (int(r.network.network_address), int(r.network.broadcast_address), i)
                for i, r in enumerate(self._rows)
                if r.network.version == version
            ),
            key=lambda b: (b[0], -b[1]),
        )
        starts: list[int] = []
        ends: list[int] = []
        owners: list[int] = []

        def emit(lo: int, hi: int, owner: int) -> None:
            if lo <= hi:
                starts.append(lo)
                ends.append(hi)
                owners.append(owner)

        stack: list[tuple[int, int]] = []  # (end, row) of the open enclosing blocks
        cursor = 0
        for start, end, owner in blocks:
            while stack and stack[-1][0] < start:
                top_end, top = stack.pop()
                emit(cursor, top_end, top)
                cursor = top_end + 1
            if stack:
                emit(cursor, start - 1, stack[-1][1])
            stack.append((end, owner))
            cursor = start
        while stack:
            top_end, top = stack.pop()
            emit(cursor, top_end, top)
            cursor = top_end + 1
        return starts, ends, owners

    def index_for(self, address: int, version: int) -> int:
        """Position in ``rows`` of the longest prefix holding ``address``, or -1."""
        if version == 4:
            starts, ends, owners = self._starts4, self._ends4, self._rows4
        else:
            starts, ends, owners = self._starts6, self._ends6, self._rows6
        i = bisect_right(starts, address) - 1
        if i >= 0 and address <= ends[i]:
            return owners[i]
        return -1

    def lookup(self, ip: str) -> AppMatch | None:
        parsed = _parse_ip(ip)
        if parsed is None:
            return None
        value, version, text = parsed
        at = self.index_for(value, version)
        if at < 0:
            return None
        row, cidr = self._rows[at], self._cidrs[at]
        return AppMatch(
            app=row.app,
            service=row.service,
            source=row.source,
            evidence=(
                f"{text} in {row.app} range {cidr} - {row.service} "
                f"(source: {row.source}; retrieved {row.retrieved})"
            ),
            matched=cidr,
            retrieved=row.retrieved,
        )

    def ipv4_arrays(
        self,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.int32]]:
        """The IPv4 intervals as (starts, ends, row index) arrays, for batch lookups."""
        return (
            np.asarray(self._starts4, dtype=np.uint32),
            np.asarray(self._ends4, dtype=np.uint32),
            np.asarray(self._rows4, dtype=np.int32),
        )

    def rows_for_ipv4(self, addresses: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Row index into ``rows`` per IPv4 address (host-order integers), -1 where none."""
        values = np.asarray(addresses, dtype=np.uint32)
        starts, ends, owners = self.ipv4_arrays()
        if starts.size == 0:
            return np.full(values.shape, -1, dtype=np.int32)
        i = np.searchsorted(starts, values, side="right").astype(np.int64) - 1
        safe = np.clip(i, 0, None)
        hit = (i >= 0) & (values <= ends[safe])
        return np.where(hit, owners[safe], -1).astype(np.int32)


def _parse_ip(ip: str) -> tuple[int, int, str] | None:
    text = ip.strip()
    if "%" in text:  # fe80::1%eth0: a link-local zone is never an app's address
        text = text.split("%", 1)[0]
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"), 4, text
    except OSError:
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None
    if packed[:12] == b"\x00" * 10 + b"\xff\xff":  # ::ffff:a.b.c.d is the IPv4 address
        v4 = int.from_bytes(packed[12:], "big")
        return v4, 4, str(ipaddress.IPv4Address(v4))
    return int.from_bytes(packed, "big"), 6, text


def _suffix(table: dict[str, NameRow], host: str, service: bool) -> AppMatch | None:
    name = host.strip().rstrip(".").lower()
    if not name:
        return None
    labels = name.split(".")
    for i in range(len(labels) - 1):  # longest suffix first; a bare TLD never matches
        row = table.get(".".join(labels[i:]))
        if row is not None:
            how = "is" if i == 0 else "is under"
            whose = f"a domain of {row.app} (not a call app)" if service else f"a {row.app} domain"
            return AppMatch(
                app=row.app,
                service=f"host name under {row.pattern}",
                source=row.source,
                evidence=f"{name} {how} {row.pattern}, {whose} (source: {row.source})",
                matched=row.pattern,
            )
    return None


class NameIndex:
    """Domain suffixes on label boundaries; realm and software tokens by substring."""

    __slots__ = ("_domains", "_realm", "_rows", "_services", "_software")

    def __init__(self, rows: Iterable[NameRow]) -> None:
        self._rows: tuple[NameRow, ...] = tuple(rows)
        self._domains: dict[str, NameRow] = {r.pattern: r for r in self._rows if r.kind == "domain"}
        self._services: dict[str, NameRow] = {
            r.pattern: r for r in self._rows if r.kind == "service"
        }
        # Longest token first, so "whispersystems.org" wins over a shorter token inside it.
        self._realm = sorted(
            (r for r in self._rows if r.kind == "realm"), key=lambda r: -len(r.pattern)
        )
        self._software = sorted(
            (r for r in self._rows if r.kind == "software"), key=lambda r: -len(r.pattern)
        )

    @property
    def rows(self) -> tuple[NameRow, ...]:
        return self._rows

    def for_name(self, host: str) -> AppMatch | None:
        """The call app whose domain ``host`` is or is under."""
        return _suffix(self._domains, host, service=False)

    def for_service(self, host: str) -> AppMatch | None:
        """The service (not a call app) whose domain ``host`` is or is under."""
        return _suffix(self._services, host, service=True)

    def _token(self, rows: list[NameRow], text: str, attribute: str) -> AppMatch | None:
        folded = text.strip().lower()
        if not folded:
            return None
        for row in rows:
            if row.pattern in folded:
                return AppMatch(
                    app=row.app,
                    service=f"STUN {attribute} token {row.pattern!r}",
                    source=row.source,
                    evidence=(
                        f"STUN {attribute} {text.strip()!r} contains {row.pattern!r}, "
                        f"a {row.app} marker (source: {row.source})"
                    ),
                    matched=row.pattern,
                )
        return None

    def for_realm(self, text: str) -> AppMatch | None:
        return self._token(self._realm, text, "REALM") or self.for_name(text)

    def for_software(self, text: str) -> AppMatch | None:
        return self._token(self._software, text, "SOFTWARE")


# --- the shipped tables ------------------------------------------------------------------


def _data(name: str) -> Traversable:
    return resources.files("voipscope") / "classify" / "data" / name


@functools.cache
def network_index() -> NetworkIndex:
    """The shipped address table, loaded on first use."""
    return NetworkIndex(load_networks(_data("app_networks.csv")))


@functools.cache
def name_index() -> NameIndex:
    """The shipped name table, loaded on first use."""
    return NameIndex(load_names(_data("app_names.csv")))


@functools.lru_cache(maxsize=65536)
def app_for_address(ip: str) -> AppMatch | None:
    """The app whose published range holds ``ip`` (longest prefix wins), or None.

    Flows repeat their addresses, so answers are memoised (AppMatch is immutable).
    """
    return network_index().lookup(ip)


@functools.lru_cache(maxsize=65536)
def app_for_name(host: str) -> AppMatch | None:
    """The app whose domain ``host`` is or is under (``xzoom.us`` is not ``zoom.us``)."""
    return name_index().for_name(host)


@functools.lru_cache(maxsize=65536)
def service_for_name(host: str) -> AppMatch | None:
    """The service -- a company whose servers are no call app's (Amazon, Microsoft,
    Google) -- whose domain ``host`` is or is under; for flows that are not VoIP."""
    return name_index().for_service(host)


def app_for_realm(text: str) -> AppMatch | None:
    """The app a STUN REALM names: a known token, else the realm read as a host name."""
    return name_index().for_realm(text)


def app_for_software(text: str) -> AppMatch | None:
    """The app a STUN SOFTWARE string names, from documented client strings only."""
    return name_index().for_software(text)
