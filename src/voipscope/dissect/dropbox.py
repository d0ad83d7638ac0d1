"""Dropbox LAN sync discovery ("db-lsp-disc"), as facts: periodic UDP broadcasts that a
port-only or size-only heuristic may take for something else.

The Dropbox client broadcasts one JSON object per datagram from and to UDP 17500
(Wireshark's packet-db-lsp.c, "Dropbox LAN sync Discovery Protocol"; nDPI's dropbox.c
keys on ``{"`` with both ports 17500). The object names the client: ``host_int``
(an integer id), ``version`` (a list of integers), ``port`` (its LAN sync TCP port) and
``namespaces`` (the shared folders, a list of integers) — the check here is that the
datagram is exactly such an object, not only that it starts with a brace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from voipscope.dissect.base import OTHER, UDP, Dissector, Finding, FlowContext, Packet, Probe
from voipscope.errors import Malformed, Truncated

DISCOVERY_PORT = 17500  # packet-db-lsp.c: DB_LSP_DISC port
MIN_DISCOVERY_BYTES = 2  # "{}"
# Keys every discovery object carries (packet-db-lsp.c dissects exactly these).
REQUIRED_KEYS = ("host_int", "version", "port", "namespaces")
MAX_NAMESPACES = 4096  # attacker-controlled count (DESIGN §4)


@dataclass(slots=True, frozen=True)
class DropboxDiscovery:
    host_int: int
    version: tuple[int, ...]
    port: int
    namespaces: int  # how many


def parse_json_object(data: bytes) -> dict[str, object]:
    """The datagram as one JSON object (UTF-8); Truncated/Malformed otherwise.

    ``json`` recurses per nesting level: a datagram of brackets must be a Malformed, not
    a RecursionError (DESIGN §4: only DecodeError leaves a parser)."""
    if len(data) < MIN_DISCOVERY_BYTES:
        raise Truncated(f"JSON object has {len(data)} bytes, fewer than 2")
    if data[:1] != b"{":
        raise Malformed("datagram does not start with a JSON object")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Malformed(f"JSON text is not UTF-8: {exc.reason}") from None
    except RecursionError:
        raise Malformed("JSON nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise Malformed(f"not one JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise Malformed("JSON value is not an object")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_dropbox_discovery(data: bytes) -> DropboxDiscovery:
    """One LAN sync discovery datagram; Truncated/Malformed."""
    obj = parse_json_object(data)
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise Malformed(f"Dropbox discovery object lacks {', '.join(missing)}")
    host, version, port, namespaces = (obj[k] for k in REQUIRED_KEYS)
    if not _is_int(host):
        raise Malformed("Dropbox discovery host_int is not an integer")
    if not isinstance(version, list) or not version or not all(_is_int(v) for v in version):
        raise Malformed("Dropbox discovery version is not a list of integers")
    if not _is_int(port) or not 0 < port < 65536:  # type: ignore[operator]
        raise Malformed(f"Dropbox discovery port {port!r} is not a port")
    if not isinstance(namespaces, list) or not all(_is_int(n) for n in namespaces):
        raise Malformed("Dropbox discovery namespaces is not a list of integers")
    if len(namespaces) > MAX_NAMESPACES:
        raise Malformed(f"Dropbox discovery lists more than {MAX_NAMESPACES} namespaces")
    return DropboxDiscovery(host, tuple(version), port, len(namespaces))  # type: ignore[arg-type]


# -- dissector ---------------------------------------------------------------------------


class DropboxDissector(Dissector):
    """Dropbox LAN sync discovery broadcasts on UDP 17500."""

    name = "Dropbox"
    transports = frozenset({UDP})
    ports = frozenset({DISCOVERY_PORT})  # the probe refuses flows on other ports
    udp_first_bytes = frozenset(b"{")
    budget_packets = 2
    follow_packets = 0

    def probe(self, ctx: FlowContext, pkt: Packet) -> Probe:
        if DISCOVERY_PORT not in (ctx.src_port, ctx.dst_port):
            return Probe.NO
        if pkt.payload[:2] != b'{"':
            return Probe.NO  # not an object with a key: no need to run the JSON parser
        msg = parse_dropbox_discovery(pkt.payload)  # DecodeError: the stage's NO
        version = ".".join(str(v) for v in msg.version)
        ctx.report(Finding(self.name, OTHER, 0.95,
                           f"Dropbox LAN sync discovery: JSON object with host_int, version "
                           f"{version}, port {msg.port}, {msg.namespaces} namespaces",
                           pkt.seq, app="Dropbox"))  # fmt: skip
        return Probe.MATCH
