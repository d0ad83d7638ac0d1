#!/usr/bin/env python3
"""Accuracy of voipscope's VoIP verdicts and of peer tools against hand-checked labels.

    python bench/accuracy.py [--captures DIR] [--labels DIR]
        [--tools voipscope,ndpireader,nfstream,tshark,tshark-rtpheur]
        [--json OUT] [--capture NAME ...] [--timeout S] [--jobs N] [--max-disagreements N]

For every capture that has a label file (`LABELS/<capture file name>.csv`, header
`proto,a_ip,a_port,b_ip,b_port,category,protocol,app,media,note`) every tool reads the same
file in the same run, once, in a child process with a timeout. Each tool's flows are joined
to the labels by the canonical 5-tuple (proto number, then A = the lower (ip, port)).

Scoring rules:
- A labelled flow the tool did not report (or a run that failed) counts as `unknown`.
- Flows a tool reports that have no label are ignored; their number is a footnote.
- A tool that splits one 5-tuple into several flows (idle timeouts) gets the most VoIP-ish
  of its verdicts (VoIP > other > unknown, then the one with more packets), for every tool.
- Labels with category `unknown` are not scored (the labeller could not decide).
- A flow is VoIP iff its category is `voip-signaling` or `voip-media`.
- Protocol accuracy: over labelled VoIP flows with a protocol; names compared
  case-insensitively through PROTOCOL_ALIASES (H225/H245/Q931 = H.323, Skinny = SCCP, ...).
- App accuracy: over labelled flows with an app; names compared through APP_ALIASES.

Peers speak their own vocabulary; it is mapped generously to voipscope's (the tables are
NDPI_* for ndpiReader/nfstream labels and TSHARK_* for tshark, and are written to --json):

| peer label (nDPI: `MASTER.APP`)                     | category       | peer_labels role |
|-----------------------------------------------------|----------------|------------------|
| RTP, RTCP, SRTP, IAX (any part)                     | voip-media     | media            |
| SIP, H323, CiscoSkinny, MGCP, Megaco (any part)     | voip-signaling | signaling        |
| an app part ending in Call/Voip (WhatsAppCall,      | voip-media     | media            |
|   SkypeCall, GoogleCall, SignalVoip, ...), unless   |                |                  |
|   behind DNS/MDNS/LLMNR/HTTP/TLS/NetBIOS            |                |                  |
| a real-time app (REALTIME_APPS) on UDP, alone or    | voip-media     | app-media        |
|   behind STUN/DTLS/TURN (Zoom, STUN.Teams, ...)     |                |                  |
| STUN, TURN, DTLS, alone or with any other app       | voip-signaling | nat (ICE)        |
|   (STUN.AmazonAWS, DTLS.Google, ...)                |                |                  |
| Unknown, empty                                      | unknown        |                  |
| anything else (DNS.WhatsApp, TLS.Zoom, QUIC, ...)   | other          |                  |

tshark: every packet's `frame.protocols` after the first UDP/TCP layer, per flow; a media
protocol in any packet (rtp, rtcp, srtp, rtpevent, t38, iax2) -> voip-media, else a signalling
one (sip, sdp, h225, q931, h245, mgcp, megaco, h248, skinny, unistim) -> voip-signaling, else
stun/classicstun/dtls/turnchannel -> voip-signaling, else the most frequent other protocol ->
other; a flow with no payload protocol (or only `data`) -> unknown. The `tshark-rtpheur`
variant adds `--enable-heuristic rtp_udp`.

`tests/unit/bench/test_accuracy.py` checks the nDPI mapping row by row against the roles in
../shared/captures/peer_labels.csv.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"
DEFAULT_LABELS = REPO / "tests" / "expected" / "labels"
DEFAULT_TIMEOUT_S = 300.0
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")

SIGNALING = "voip-signaling"
MEDIA = "voip-media"
OTHER = "other"
UNKNOWN = "unknown"
CATEGORIES = (SIGNALING, MEDIA, OTHER, UNKNOWN)
VOIP = frozenset({SIGNALING, MEDIA})
SCORED_CLASSES = (SIGNALING, MEDIA, "voip")

FlowKey = tuple[int, str, int, str, int]

# ---------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True, slots=True)
class Verdict:
    """One tool's opinion of one flow, already in voipscope's vocabulary."""

    category: str
    protocol: str | None = None
    app: str | None = None
    label: str | None = None  # the tool's own words, for the disagreement list
    packets: int = 0
    detected_at_packet: int | None = None


@dataclass(frozen=True, slots=True)
class Label:
    category: str
    protocol: str | None = None
    app: str | None = None
    media: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RawFlow:
    """A flow as a tool printed it: direction as the tool saw it, addresses unparsed."""

    proto: int | None
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    verdict: Verdict


@dataclass(slots=True)
class ToolRun:
    tool: str
    capture: str
    status: str  # ok | failed | timeout | missing
    flows: dict[FlowKey, Verdict] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    unparsed: int = 0  # flows whose addresses could not be read


class ToolError(RuntimeError):
    pass


class ToolTimeout(ToolError):
    pass


# ---------------------------------------------------------------------------------------
# 5-tuples

PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}


def proto_number(value: object) -> int | None:
    """6/17 from 6, "6", "tcp", "TCP"; None when it is not a protocol at all."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    return PROTO_NUMBERS.get(text)


def canonical_key(proto: int, ip1: str, port1: int, ip2: str, port2: int) -> FlowKey:
    """(proto, a_ip, a_port, b_ip, b_port) with A the lower (ip, port); raises ValueError."""
    a = ipaddress.ip_address(ip1.strip())
    b = ipaddress.ip_address(ip2.strip())
    side1 = (a.version, a, int(port1))
    side2 = (b.version, b, int(port2))
    if side2 < side1:
        side1, side2 = side2, side1
    return (proto, str(side1[1]), side1[2], str(side2[1]), side2[2])


def ipv6_candidates(text: str) -> list[str]:
    """Readings of an IPv6 address printed with more than one `::` (ndpiReader 4.2 does:
    `2600:1900:4160:5999::19::` for 2600:1900:4160:5999:0:19::). Each `::` stands for one
    or more zero groups; every split of the missing groups is returned."""
    parts = text.split("::")
    if len(parts) < 3:
        return []
    groups = [p.split(":") if p else [] for p in parts]
    missing = 8 - sum(len(g) for g in groups)
    gaps = len(parts) - 1
    if missing < gaps:
        return []
    out: list[str] = []
    for split in _compositions(missing, gaps):
        words: list[str] = list(groups[0])
        for zeros, group in zip(split, groups[1:], strict=True):
            words += ["0"] * zeros + group
        with contextlib.suppress(ValueError):
            out.append(str(ipaddress.IPv6Address(":".join(words))))
    return out


def _compositions(total: int, parts: int) -> Iterable[tuple[int, ...]]:
    """All ways to write total as an ordered sum of `parts` positive integers."""
    if parts == 1:
        yield (total,)
        return
    for first in range(1, total - parts + 2):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def resolve_key(flow: RawFlow, known: set[FlowKey]) -> FlowKey | None:
    """The canonical key of a tool's flow; a garbled IPv6 address is repaired when exactly
    one reading of it matches a labelled flow."""
    if flow.proto is None:
        return None
    try:
        return canonical_key(flow.proto, flow.src_ip, flow.src_port, flow.dst_ip, flow.dst_port)
    except ValueError:
        pass
    src = ipv6_candidates(flow.src_ip) or [flow.src_ip]
    dst = ipv6_candidates(flow.dst_ip) or [flow.dst_ip]
    matches = set()
    for s in src:
        for d in dst:
            with contextlib.suppress(ValueError):
                key = canonical_key(flow.proto, s, flow.src_port, d, flow.dst_port)
                if key in known:
                    matches.add(key)
    return matches.pop() if len(matches) == 1 else None


def _voip_rank(v: Verdict) -> tuple[int, int]:
    rank = 2 if v.category in VOIP else 1 if v.category == OTHER else 0
    return (rank, v.packets)


def merge_flows(raw: Iterable[RawFlow], known: set[FlowKey]) -> tuple[dict[FlowKey, Verdict], int]:
    """One verdict per canonical key (see the module doc) and the number of unreadable flows."""
    merged: dict[FlowKey, Verdict] = {}
    unparsed = 0
    for flow in raw:
        key = resolve_key(flow, known)
        if key is None:
            unparsed += flow.proto in (6, 17)
            continue
        old = merged.get(key)
        if old is None or _voip_rank(flow.verdict) > _voip_rank(old):
            merged[key] = flow.verdict
    return merged, unparsed


# ---------------------------------------------------------------------------------------
# Expected labels


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def parse_labels(text: str) -> tuple[dict[FlowKey, Label], list[str]]:
    """Label rows keyed by canonical 5-tuple, and one warning per row that was skipped."""
    labels: dict[FlowKey, Label] = {}
    warnings: list[str] = []
    for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            proto = proto_number(row["proto"])
            if proto is None:
                raise ValueError(f"proto {row['proto']!r}")
            key = canonical_key(
                proto, row["a_ip"], int(row["a_port"]), row["b_ip"], int(row["b_port"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            warnings.append(f"line {n}: unreadable 5-tuple ({exc})")
            continue
        category = (row.get("category") or "").strip().lower()
        if category not in CATEGORIES:
            warnings.append(f"line {n}: category {category!r} not in {CATEGORIES}")
            continue
        if key in labels:
            warnings.append(f"line {n}: duplicate 5-tuple, first row kept")
            continue
        labels[key] = Label(
            category=category,
            protocol=_blank_to_none(row.get("protocol")),
            app=_blank_to_none(row.get("app")),
            media=_blank_to_none(row.get("media")),
            note=_blank_to_none(row.get("note")),
        )
    return labels, warnings


# ---------------------------------------------------------------------------------------
# Peer vocabulary -> voipscope vocabulary (generous; see the module doc)

NDPI_MEDIA = frozenset({"RTP", "RTCP", "SRTP", "IAX", "T38"})
NDPI_SIGNALING = frozenset({"SIP", "H323", "CiscoSkinny", "MGCP", "Megaco"})
NDPI_NAT = frozenset({"STUN", "TURN", "DTLS"})
NDPI_CALL_SUFFIXES = ("Call", "Voip")
# Masters under which an app name says nothing about media (DNS.WhatsApp, TLS.Zoom).
NDPI_NOT_MEDIA_MASTERS = frozenset({"DNS", "MDNS", "LLMNR", "HTTP", "TLS", "NetBIOS"})
# Apps whose UDP flows are calls (nDPI names; any case).
REALTIME_APPS = frozenset(
    name.lower()
    for name in (
        "WhatsApp", "Zoom", "Teams", "Skype_Teams", "Skype", "Discord", "Signal",
        "GoogleMeet", "GoogleHangoutDuo", "GoogleDuo", "Telegram", "Mumble", "TeamSpeak",
        "IMO", "Webex", "FaceTime", "Viber", "Line", "Snapchat", "Messenger", "WeChat",
        "KakaoTalk", "Tox", "Jitsi", "Slack", "Whereby", "BotIM",
    )
)  # fmt: skip
NDPI_PROTOCOL_NAMES = {
    "SIP": "SIP", "RTP": "RTP", "RTCP": "RTCP", "SRTP": "SRTP", "STUN": "STUN",
    "TURN": "TURN", "DTLS": "DTLS", "H323": "H.323", "CiscoSkinny": "SCCP", "MGCP": "MGCP",
    "Megaco": "H.248", "IAX": "IAX2", "T38": "T.38",
}  # fmt: skip

TSHARK_MEDIA = ("t38", "iax2", "srtp", "rtp", "rtpevent", "rtcp", "srtcp")
TSHARK_SIGNALING = (
    "sip",
    "h225",
    "q931",
    "h245",
    "mgcp",
    "megaco",
    "h248",
    "skinny",
    "unistim",
    "sdp",
)
TSHARK_NAT = ("stun", "classicstun", "turnchannel", "dtls")
TSHARK_IGNORED = frozenset({"data", "tcp.segments", "ip", "ipv6", "udp", "tcp"})
TSHARK_PROTOCOL_NAMES = {
    "rtp": "RTP", "rtpevent": "RTP", "rtcp": "RTCP", "srtp": "SRTP", "srtcp": "SRTP",
    "sip": "SIP", "sdp": "SIP", "h225": "H.323", "q931": "H.323", "h245": "H.323",
    "mgcp": "MGCP", "megaco": "H.248", "h248": "H.248", "skinny": "SCCP", "unistim": "UNISTIM",
    "iax2": "IAX2", "t38": "T.38", "stun": "STUN", "classicstun": "STUN",
    "turnchannel": "TURN", "dtls": "DTLS",
}  # fmt: skip

# Comparison keys: lower-case, only letters and digits, then these aliases.
PROTOCOL_ALIASES = {
    "h225": "h323", "h245": "h323", "q931": "h323", "ras": "h323",
    "skinny": "sccp", "ciscoskinny": "sccp",
    "iax": "iax2",
    "megaco": "h248",
    "classicstun": "stun", "turn": "stun", "turnchannel": "stun",  # nDPI calls TURN STUN
    "skypeteams": "skype", "skypecall": "skype", "skypeteamscall": "skype",
    "rtpevent": "rtp",
}  # fmt: skip
APP_ALIASES = {
    "whatsappcall": ("whatsapp",), "whatsappvoice": ("whatsapp",),
    "teamscall": ("teams",), "microsoftteams": ("teams",), "msteams": ("teams",),
    # nDPI 4.2 names Teams calls SkypeCall and the pair Skype_Teams.
    "skypeteams": ("skype", "teams"), "skypecall": ("skype", "teams"),
    "skypeteamscall": ("skype", "teams"),
    "meet": ("google",), "googlemeet": ("google",), "googlecall": ("google",),
    "googlehangoutduo": ("google",), "googleduo": ("google",), "duo": ("google",),
    "hangouts": ("google",),
    "signalvoip": ("signal",), "telegramvoip": ("telegram",), "teamspeak3": ("teamspeak",),
    "snapchatcall": ("snapchat",), "ciscowebex": ("webex",), "kakaotalkvoice": ("kakaotalk",),
    "facebookvoip": ("messenger",), "facebookmessenger": ("messenger",),
    "facebook": ("messenger",), "linecall": ("line",),
}  # fmt: skip


def _ndpi_app_is_call(part: str) -> bool:
    return part.endswith(NDPI_CALL_SUFFIXES) and len(part) > 4


def _ndpi_app_name(parts: Sequence[str]) -> str | None:
    for part in reversed(parts):
        if part.lower() in REALTIME_APPS or _ndpi_app_is_call(part):
            return part
    return None


def _ndpi_protocol(parts: Sequence[str], app: str | None) -> str | None:
    for part in parts:
        if part in NDPI_PROTOCOL_NAMES:
            return NDPI_PROTOCOL_NAMES[part]
    if app is not None and "skype" in app.lower():
        return "Skype"  # classic Skype: nDPI has no protocol name besides the app
    if parts and parts[0] != app:
        return parts[0]
    return None


def ndpi_category(label: str | None, proto: int | None) -> str:
    """voipscope category of an nDPI label such as `STUN.WhatsAppCall` (ndpiReader, nfstream)."""
    parts = [p for p in (label or "").strip().split(".") if p]
    if not parts or parts == ["Unknown"]:
        return UNKNOWN
    master = parts[0] if len(parts) > 1 else None
    if any(p in NDPI_MEDIA for p in parts):
        return MEDIA
    if any(p in NDPI_SIGNALING for p in parts):
        return SIGNALING
    if master not in NDPI_NOT_MEDIA_MASTERS:
        if any(_ndpi_app_is_call(p) for p in parts[1:] or parts):
            return MEDIA
        apps_only = master is None or master in NDPI_NAT or master.lower() in REALTIME_APPS
        if proto == 17 and apps_only and any(p.lower() in REALTIME_APPS for p in parts):
            return MEDIA
    if any(p in NDPI_NAT for p in parts):
        return SIGNALING
    return OTHER


def ndpi_verdict(label: str | None, proto: int | None, packets: int = 0) -> Verdict:
    parts = [p for p in (label or "").strip().split(".") if p and p != "Unknown"]
    app = _ndpi_app_name(parts)
    return Verdict(
        category=ndpi_category(label, proto),
        protocol=_ndpi_protocol(parts, app),
        app=app,
        label=label or None,
        packets=packets,
    )


def tshark_verdict(protocols: Counter[str], packets: int = 0) -> Verdict:
    """Category of a flow from the payload protocols tshark saw in its packets."""
    seen = {p for p in protocols if p not in TSHARK_IGNORED and not p.startswith("_ws.")}
    for names, category in (
        (TSHARK_MEDIA, MEDIA),
        (TSHARK_SIGNALING, SIGNALING),
        (TSHARK_NAT, SIGNALING),
    ):
        for name in names:
            if name in seen:
                return Verdict(category, TSHARK_PROTOCOL_NAMES[name], None, name, packets)
    if not seen:
        return Verdict(UNKNOWN, None, None, None, packets)
    top = max(sorted(seen), key=lambda p: protocols[p])
    return Verdict(OTHER, TSHARK_PROTOCOL_NAMES.get(top, top.upper()), None, top, packets)


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def protocol_matches(expected: str, predicted: str | None) -> bool:
    if not predicted:
        return False
    e, p = _norm(expected), _norm(predicted)
    return PROTOCOL_ALIASES.get(e, e) == PROTOCOL_ALIASES.get(p, p)


def _app_names(name: str) -> set[str]:
    n = _norm(name)
    return set(APP_ALIASES.get(n, (n,)))


def app_matches(expected: str, predicted: str | None) -> bool:
    return bool(predicted) and bool(_app_names(expected) & _app_names(predicted or ""))


# ---------------------------------------------------------------------------------------
# Tool output parsers (pure)


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value).strip() or default)
    except ValueError:
        return default


def parse_ndpireader_csv(text: str) -> list[RawFlow]:
    """`ndpiReader -C FILE` output. Only leading columns are read: later ones (ALPN lists)
    may hold unquoted commas."""
    lines = text.splitlines()
    if not lines:
        return []
    header = next(csv.reader([lines[0].lstrip("#")]))
    col = {name: i for i, name in enumerate(header)}
    flows = []
    for row in csv.reader(lines[1:]):
        if len(row) <= col["ndpi_proto"]:
            continue
        proto = proto_number(row[col["protocol"]])
        packets = _int(row[col["c_to_s_pkts"]]) + _int(row[col["s_to_c_pkts"]])
        flows.append(
            RawFlow(
                proto=proto,
                src_ip=row[col["src_ip"]],
                src_port=_int(row[col["src_port"]]),
                dst_ip=row[col["dst_ip"]],
                dst_port=_int(row[col["dst_port"]]),
                verdict=ndpi_verdict(row[col["ndpi_proto"]], proto, packets),
            )
        )
    return flows


def parse_nfstream_jsonl(text: str) -> list[RawFlow]:
    """Lines written by NFSTREAM_SCRIPT: proto, addresses, nDPI label, packets."""
    flows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        proto = proto_number(rec["proto"])
        flows.append(
            RawFlow(
                proto=proto,
                src_ip=str(rec["src_ip"]),
                src_port=_int(rec["src_port"]),
                dst_ip=str(rec["dst_ip"]),
                dst_port=_int(rec["dst_port"]),
                verdict=ndpi_verdict(rec.get("label"), proto, _int(rec.get("packets"))),
            )
        )
    return flows


def parse_voipscope_jsonl(text: str) -> list[RawFlow]:
    """Lines written by VOIPSCOPE_SCRIPT: rows of read_flows() (the contract's columns)."""
    flows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        detected = rec.get("detected_at_packet")
        verdict = Verdict(
            category=(rec.get("category") or UNKNOWN).lower(),
            protocol=rec.get("protocol"),
            app=rec.get("app"),
            label="/".join(str(rec[k]) for k in ("category", "protocol", "app") if rec.get(k)),
            packets=_int(rec.get("src2dst_packets")) + _int(rec.get("dst2src_packets")),
            detected_at_packet=None if detected is None else int(detected),
        )
        flows.append(
            RawFlow(
                proto=proto_number(rec.get("proto", "")),
                src_ip=str(rec.get("src_ip") or ""),
                src_port=_int(rec.get("src_port")),
                dst_ip=str(rec.get("dst_ip") or ""),
                dst_port=_int(rec.get("dst_port")),
                verdict=verdict,
            )
        )
    return flows


TSHARK_FIELDS = (
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
)
TSHARK_TRANSPORTS = frozenset(
    {"udp", "tcp", "icmp", "icmpv6", "igmp", "sctp", "esp", "ah", "gre", "ospf", "pim", "vrrp"}
)


def _tshark_packet(line: str) -> tuple[tuple[int, str, int, str, int], list[str]] | None:
    """(proto, src, sport, dst, dport) and the protocols above transport of one packet."""
    cols = line.rstrip("\n").split("\t")
    if len(cols) < len(TSHARK_FIELDS):
        return None
    layers = cols[0].split(":")
    at = next((i for i, p in enumerate(layers) if p in TSHARK_TRANSPORTS), None)
    if at is None or layers[at] not in ("udp", "tcp"):
        return None
    ip_layer = next((p for p in reversed(layers[:at]) if p in ("ip", "ipv6")), None)
    src, dst = (cols[1], cols[2]) if ip_layer == "ip" else (cols[3], cols[4])
    ports = (cols[5], cols[6]) if layers[at] == "udp" else (cols[7], cols[8])
    if not (src and dst and ports[0] and ports[1]):
        return None
    proto = PROTO_NUMBERS[layers[at]]
    return (proto, src, int(ports[0]), dst, int(ports[1])), layers[at + 1 :]


def parse_tshark_fields(text: str) -> list[RawFlow]:
    """`tshark -T fields` output of TSHARK_FIELDS (first occurrence), one line per packet."""
    seen: dict[FlowKey, Counter[str]] = {}
    packets: Counter[FlowKey] = Counter()
    first: dict[FlowKey, tuple[int, str, int, str, int]] = {}
    for line in text.splitlines():
        parsed = _tshark_packet(line)
        if parsed is None:
            continue
        tup, layers = parsed
        try:
            key = canonical_key(*tup)
        except ValueError:
            continue
        first.setdefault(key, tup)
        packets[key] += 1
        seen.setdefault(key, Counter()).update(set(layers))
    return [
        RawFlow(*first[key], verdict=tshark_verdict(protocols, packets[key]))
        for key, protocols in seen.items()
    ]


# ---------------------------------------------------------------------------------------
# Running the tools (each in a child process, with a timeout)

NFSTREAM_SCRIPT = """
import json, sys
from nfstream import NFStreamer
for f in NFStreamer(source=sys.argv[1], n_dissections=255, statistical_analysis=False):
    print(json.dumps({"proto": f.protocol, "src_ip": f.src_ip, "src_port": f.src_port,
                      "dst_ip": f.dst_ip, "dst_port": f.dst_port, "label": f.application_name,
                      "category": f.application_category_name,
                      "packets": f.bidirectional_packets}))
"""

VOIPSCOPE_SCRIPT = """
import json, sys
from voipscope.api import read_flows
table = read_flows([sys.argv[1]])
wanted = ["proto", "src_ip", "src_port", "dst_ip", "dst_port", "src2dst_packets",
          "dst2src_packets", "category", "protocol", "app", "media", "detected_at_packet"]
names = [c for c in wanted if c in table.column_names]
for row in table.select(names).to_pylist():
    print(json.dumps(row, default=str))
"""


def run_command(cmd: Sequence[str], timeout: float, partial_ok: bool = False) -> str:
    """stdout of cmd; ToolTimeout / ToolError on timeout or a non-zero exit (with partial_ok,
    a non-zero exit that still printed something is accepted: tshark exits 2 on a capture
    cut short). On timeout the process group this call started is killed (nfstream forks)."""
    with subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ToolTimeout(f"timeout after {timeout:g} s") from None
    if proc.returncode != 0 and not (partial_ok and out.strip()):
        last = (err.strip().splitlines() or ["no message"])[-1]
        raise ToolError(f"exit status {proc.returncode}: {last[:200]}")
    return out


def run_ndpireader(capture: Path, timeout: float) -> list[RawFlow]:
    with tempfile.TemporaryDirectory(prefix="voipscope-acc-") as tmp:
        out = Path(tmp) / "flows.csv"
        run_command(["ndpiReader", "-q", "-i", str(capture), "-C", str(out)], timeout)
        return parse_ndpireader_csv(out.read_text(errors="replace"))


def run_nfstream(capture: Path, timeout: float) -> list[RawFlow]:
    return parse_nfstream_jsonl(
        run_command([sys.executable, "-c", NFSTREAM_SCRIPT, str(capture)], timeout)
    )


def run_voipscope(capture: Path, timeout: float) -> list[RawFlow]:
    return parse_voipscope_jsonl(
        run_command([sys.executable, "-c", VOIPSCOPE_SCRIPT, str(capture)], timeout)
    )


def _tshark_cmd(capture: Path, extra: Sequence[str]) -> list[str]:
    cmd = ["tshark", "-n", "-r", str(capture), *extra, "-T", "fields", "-E", "separator=/t"]
    cmd += ["-E", "occurrence=f"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    return cmd


def run_tshark(capture: Path, timeout: float) -> list[RawFlow]:
    return parse_tshark_fields(run_command(_tshark_cmd(capture, []), timeout, partial_ok=True))


def run_tshark_rtpheur(capture: Path, timeout: float) -> list[RawFlow]:
    extra = ["--enable-heuristic", "rtp_udp"]
    return parse_tshark_fields(run_command(_tshark_cmd(capture, extra), timeout, partial_ok=True))


def _first_line(cmd: Sequence[str], contains: str = "") -> str | None:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (proc.stdout + proc.stderr).splitlines():
        if contains in line:
            return line.strip()
    return None


def _module_version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    code = f"import {module} as m; print(getattr(m, '__version__', '?'))"
    return f"{module} {_first_line([sys.executable, '-c', code]) or '?'}"


def version_voipscope() -> str | None:
    if importlib.util.find_spec("voipscope") is None:
        return None
    code = "from voipscope._version import __version__ as v; print(v)"
    return f"voipscope {_first_line([sys.executable, '-c', code]) or '?'}"


def version_ndpireader() -> str | None:
    if shutil.which("ndpiReader") is None:
        return None
    line = _first_line(["ndpiReader", "-h"], "nDPI") or "nDPI ?"
    return line.removeprefix("Welcome to ")


def version_tshark() -> str | None:
    if shutil.which("tshark") is None:
        return None
    line = _first_line(["tshark", "-v"], "TShark") or "tshark ?"
    return line.split(" (Git")[0]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    version: Callable[[], str | None]  # None: not installed
    run: Callable[[Path, float], list[RawFlow]]


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("voipscope", version_voipscope, run_voipscope),
        Tool("ndpireader", version_ndpireader, run_ndpireader),
        Tool("nfstream", lambda: _module_version("nfstream"), run_nfstream),
        Tool("tshark", version_tshark, run_tshark),
        Tool("tshark-rtpheur", version_tshark, run_tshark_rtpheur),
    )
}


def run_tool(tool: Tool, capture: Path, timeout: float, known: set[FlowKey]) -> ToolRun:
    started = time.perf_counter()
    run = ToolRun(tool.name, capture.name, "ok")
    try:
        raw = tool.run(capture, timeout)
        run.flows, run.unparsed = merge_flows(raw, known)
    except ToolTimeout as exc:
        run.status, run.error = "timeout", str(exc)
    except Exception as exc:  # one tool's failure never stops the harness
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"[:300]
    run.seconds = time.perf_counter() - started
    return run


# ---------------------------------------------------------------------------------------
# Metrics (pure)


@dataclass(slots=True)
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: bool, predicted: bool) -> None:
        self.tp += expected and predicted
        self.fp += predicted and not expected
        self.fn += expected and not predicted

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(slots=True)
class Ratio:
    correct: int = 0
    total: int = 0

    @property
    def value(self) -> float | None:
        return self.correct / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "total": self.total, "accuracy": self.value}


@dataclass(slots=True)
class ToolStats:
    """Everything counted for one tool over all scored flows."""

    classes: dict[str, Scores] = field(
        default_factory=lambda: {c: Scores() for c in SCORED_CLASSES}
    )
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    protocol: Ratio = field(default_factory=Ratio)
    protocol_by_name: dict[str, Ratio] = field(default_factory=lambda: defaultdict(Ratio))
    app: Ratio = field(default_factory=Ratio)
    app_by_name: dict[str, Ratio] = field(default_factory=lambda: defaultdict(Ratio))
    runs: Counter[str] = field(default_factory=Counter)
    unlabelled: int = 0
    unparsed: int = 0
    seconds: float = 0.0

    def add(self, label: Label, verdict: Verdict | None) -> None:
        predicted = verdict.category if verdict and verdict.category in CATEGORIES else UNKNOWN
        self.confusion[(label.category, predicted)] += 1
        for cls in (SIGNALING, MEDIA):
            self.classes[cls].add(label.category == cls, predicted == cls)
        self.classes["voip"].add(label.category in VOIP, predicted in VOIP)
        if label.category in VOIP and label.protocol:
            ok = protocol_matches(label.protocol, verdict.protocol if verdict else None)
            for ratio in (self.protocol, self.protocol_by_name[label.protocol]):
                ratio.correct += ok
                ratio.total += 1
        if label.app:
            ok = app_matches(label.app, verdict.app if verdict else None)
            for ratio in (self.app, self.app_by_name[label.app]):
                ratio.correct += ok
                ratio.total += 1


def binary_scores(labels: dict[FlowKey, Label], flows: dict[FlowKey, Verdict]) -> Scores:
    """VoIP vs not-VoIP over the scored labels of one capture."""
    scores = Scores()
    for key, label in labels.items():
        verdict = flows.get(key)
        scores.add(label.category in VOIP, verdict is not None and verdict.category in VOIP)
    return scores


def median_detection(verdicts: Iterable[Verdict]) -> dict[str, dict[str, float | int]]:
    """n, median and max of detected_at_packet per protocol over VoIP verdicts."""
    by_protocol: dict[str, list[int]] = defaultdict(list)
    for v in verdicts:
        if v.category in VOIP and v.detected_at_packet is not None:
            by_protocol[v.protocol or "?"].append(v.detected_at_packet)
    return {
        name: {"n": len(vals), "median": statistics.median(vals), "max": max(vals)}
        for name, vals in sorted(by_protocol.items())
    }


# ---------------------------------------------------------------------------------------
# One evaluation over all captures


@dataclass(slots=True)
class CaptureResult:
    capture: str
    labels: dict[FlowKey, Label]  # scored labels only
    unscored: set[FlowKey]  # labelled `unknown`: neither scored nor "without label"
    runs: dict[str, ToolRun]


@dataclass(slots=True)
class Evaluation:
    tools: list[str]
    versions: dict[str, str | None]
    captures: list[CaptureResult]
    skipped: list[str]  # captures without a label file
    label_warnings: dict[str, list[str]]
    stats: dict[str, ToolStats]
    seconds: float


@dataclass(slots=True)
class LabelledCapture:
    path: Path
    labels: dict[FlowKey, Label]  # scored labels only
    unscored: set[FlowKey]
    warnings: list[str]


def load_labelled(captures: Sequence[Path], labels_dir: Path) -> list[LabelledCapture | str]:
    """A LabelledCapture per capture with a label file, the bare name of the others."""
    out: list[LabelledCapture | str] = []
    for capture in captures:
        label_file = labels_dir / f"{capture.name}.csv"
        if not label_file.is_file():
            out.append(capture.name)
            continue
        labels, warnings = parse_labels(label_file.read_text(errors="replace"))
        scored = {k: v for k, v in labels.items() if v.category != UNKNOWN}
        out.append(LabelledCapture(capture, scored, set(labels) - set(scored), warnings))
    return out


def run_all(
    labelled: Sequence[LabelledCapture],
    tool_names: Sequence[str],
    versions: dict[str, str | None],
    timeout: float,
    jobs: int,
) -> list[CaptureResult]:
    """Every tool on every capture, `jobs` child processes at a time."""

    def task(lc: LabelledCapture, name: str) -> ToolRun:
        if versions[name] is None:
            return ToolRun(name, lc.path.name, "missing", error="not installed")
        return run_tool(TOOLS[name], lc.path, timeout, set(lc.labels) | lc.unscored)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [{name: pool.submit(task, lc, name) for name in tool_names} for lc in labelled]
        return [
            CaptureResult(
                lc.path.name, lc.labels, lc.unscored, {n: f.result() for n, f in fs.items()}
            )
            for lc, fs in zip(labelled, futures, strict=True)
        ]


def evaluate(
    captures: Sequence[Path],
    labels_dir: Path,
    tool_names: Sequence[str],
    timeout: float,
    jobs: int,
) -> Evaluation:
    started = time.perf_counter()
    versions = {name: TOOLS[name].version() for name in tool_names}
    loaded = load_labelled(captures, labels_dir)
    labelled = [lc for lc in loaded if isinstance(lc, LabelledCapture)]
    results = run_all(labelled, tool_names, versions, timeout, jobs)
    return Evaluation(
        tools=list(tool_names),
        versions=versions,
        captures=results,
        skipped=[name for name in loaded if isinstance(name, str)],
        label_warnings={lc.path.name: lc.warnings for lc in labelled if lc.warnings},
        stats=tool_stats(results, tool_names),
        seconds=time.perf_counter() - started,
    )


def tool_stats(results: Sequence[CaptureResult], tool_names: Sequence[str]) -> dict[str, ToolStats]:
    stats = {name: ToolStats() for name in tool_names}
    for result in results:
        for name in tool_names:
            run, st = result.runs[name], stats[name]
            st.runs[run.status] += 1
            st.seconds += run.seconds
            st.unparsed += run.unparsed
            st.unlabelled += sum(
                1 for key in run.flows if key not in result.labels and key not in result.unscored
            )
            for key, label in result.labels.items():
                st.add(label, run.flows.get(key))
    return stats


def disagreements(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Every scored flow on which some tool that ran without error gives another category."""
    out = []
    available = [t for t in evaluation.tools if evaluation.versions[t] is not None]
    for result in evaluation.captures:
        ran = [t for t in available if result.runs[t].status == "ok"]
        for key, label in sorted(result.labels.items(), key=_sort_key):
            verdicts = {t: result.runs[t].flows.get(key) for t in ran}
            if all(v is not None and v.category == label.category for v in verdicts.values()):
                continue
            tools: dict[str, Any] = {t: {"status": result.runs[t].status} for t in available}
            tools.update({t: _verdict_dict(v) for t, v in verdicts.items()})
            expected = {
                "category": label.category,
                "protocol": label.protocol,
                "app": label.app,
                "note": label.note,
            }
            out.append(
                {
                    "capture": result.capture,
                    "flow": format_key(key),
                    "expected": expected,
                    "tools": tools,
                }
            )
    return out


def _verdict_dict(v: Verdict | None) -> dict[str, Any]:
    if v is None:
        return {"category": UNKNOWN, "protocol": None, "app": None, "label": "(not reported)"}
    return {"category": v.category, "protocol": v.protocol, "app": v.app, "label": v.label}


def _sort_key(item: tuple[FlowKey, Label]) -> tuple[Any, ...]:
    proto, a_ip, a_port, b_ip, b_port = item[0]
    a, b = ipaddress.ip_address(a_ip), ipaddress.ip_address(b_ip)
    return (proto, a.version, a, a_port, b.version, b, b_port)


def format_key(key: FlowKey) -> str:
    proto, a_ip, a_port, b_ip, b_port = key
    name = {6: "tcp", 17: "udp"}.get(proto, str(proto))
    return f"{name} {_endpoint(a_ip, a_port)} <-> {_endpoint(b_ip, b_port)}"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# ---------------------------------------------------------------------------------------
# Report: tables, rendered with rich when it is installed, else as plain text


@dataclass(slots=True)
class TextTable:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def ratio_text(ratio: Ratio) -> str:
    return "—" if not ratio.total else f"{pct(ratio.value)} ({ratio.correct}/{ratio.total})"


def _status_text(ev: Evaluation, name: str) -> str:
    if ev.versions[name] is None:
        return "not installed"
    runs = ev.stats[name].runs
    bad = [f"{runs[s]} {s}" for s in ("failed", "timeout") if runs[s]]
    return ", ".join(bad) if bad else "ok"


def summary_table(ev: Evaluation) -> TextTable:
    cols = ["tool", "runs"]
    for short in ("sig", "media", "VoIP"):
        cols += [f"{short} P", f"{short} R", f"{short} F1"]
    cols += ["protocol acc. % (VoIP)", "app acc. %", "seconds"]
    rows = []
    for name in ev.tools:
        st = ev.stats[name]
        row = [name, _status_text(ev, name)]
        if ev.versions[name] is None:
            rows.append(row + ["—"] * (len(cols) - 2))
            continue
        for cls in SCORED_CLASSES:
            s = st.classes[cls]
            row += [pct(s.precision), pct(s.recall), pct(s.f1)]
        row += [ratio_text(st.protocol), ratio_text(st.app), f"{st.seconds:.1f}"]
        rows.append(row)
    n = sum(len(r.labels) for r in ev.captures)
    return TextTable(
        f"Accuracy per tool over {n} labelled flows in {len(ev.captures)} captures (P/R/F1 in %)",
        cols,
        rows,
    )


def confusion_table(ev: Evaluation, name: str) -> TextTable:
    st = ev.stats[name]
    rows = [
        [f"expected {exp}", *(str(st.confusion[(exp, pred)]) for pred in CATEGORIES)]
        for exp in CATEGORIES
        if any(st.confusion[(exp, p)] for p in CATEGORIES)
    ]
    return TextTable(f"{name}: expected × predicted category", ["", *CATEGORIES], rows)


def protocol_table(ev: Evaluation) -> TextTable:
    names = sorted({p for st in ev.stats.values() for p in st.protocol_by_name}, key=str.lower)
    tools = [t for t in ev.tools if ev.versions[t] is not None]
    rows = [
        [p, *(ratio_text(ev.stats[t].protocol_by_name.get(p, Ratio())) for t in tools)]
        for p in names
    ]
    return TextTable(
        "Protocol accuracy on labelled VoIP flows, by expected protocol (%)",
        ["expected protocol", *tools],
        rows,
    )


def app_table(ev: Evaluation) -> TextTable:
    names = sorted({a for st in ev.stats.values() for a in st.app_by_name}, key=str.lower)
    tools = [t for t in ev.tools if ev.versions[t] is not None]
    rows = [
        [a, *(ratio_text(ev.stats[t].app_by_name.get(a, Ratio())) for t in tools)] for a in names
    ]
    return TextTable(
        "App accuracy on labelled flows with an app (%)", ["expected app", *tools], rows
    )


def capture_table(ev: Evaluation) -> TextTable:
    cols = ["capture", "flows", "VoIP", *(f"{t} found/FP/missed" for t in ev.tools)]
    rows = []
    for result in ev.captures:
        n_voip = sum(1 for lab in result.labels.values() if lab.category in VOIP)
        row = [result.capture, str(len(result.labels)), str(n_voip)]
        for name in ev.tools:
            run = result.runs[name]
            if run.status != "ok":
                row.append(run.status)
                continue
            s = binary_scores(result.labels, run.flows)
            row.append(f"{s.tp}/{s.fp}/{s.fn}")
        rows.append(row)
    return TextTable("Per capture: VoIP flows found / false positives / missed", cols, rows)


def detection_table(ev: Evaluation) -> TextTable | None:
    if "voipscope" not in ev.tools:
        return None
    verdicts = [v for r in ev.captures for v in r.runs["voipscope"].flows.values()]
    medians = median_detection(verdicts)
    rows = [[p, str(d["n"]), f"{d['median']:g}", str(d["max"])] for p, d in medians.items()]
    notes = [] if rows else ["no VoIP flow with detected_at_packet in voipscope's output"]
    return TextTable(
        "voipscope: packet at which a VoIP flow was identified",
        ["protocol", "flows", "median", "max"],
        rows,
        notes,
    )


def _verdict_text(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "—"
    if "status" in verdict:
        return str(verdict["status"])
    return "/".join(str(verdict[k]) for k in ("category", "protocol", "app") if verdict.get(k))


def disagreement_table(
    dis: Sequence[dict[str, Any]], tools: Sequence[str], limit: int
) -> TextTable:
    rows = [
        [
            d["capture"],
            d["flow"],
            _verdict_text(d["expected"]),
            *(_verdict_text(d["tools"].get(t)) for t in tools),
        ]
        for d in dis[:limit]
    ]
    notes = [f"{len(dis) - limit} more in --json"] if len(dis) > limit else []
    return TextTable(
        f"Disagreements ({len(dis)} flows where some tool's category differs)",
        ["capture", "flow", "expected", *tools],
        rows,
        notes,
    )


def footnotes(ev: Evaluation) -> list[str]:
    notes = [
        f"Captures without labels (skipped, {len(ev.skipped)}): "
        + (", ".join(ev.skipped) if ev.skipped else "none"),
    ]
    unscored = sum(len(r.unscored) for r in ev.captures)
    if unscored:
        notes.append(f"{unscored} labelled flows have category 'unknown' and are not scored.")
    for capture, warns in ev.label_warnings.items():
        notes.append(f"labels {capture}: {len(warns)} rows skipped ({warns[0]}, ...)")
    for name in ev.tools:
        st = ev.stats[name]
        if ev.versions[name] is None:
            notes.append(f"{name}: not installed; no numbers.")
            continue
        notes.append(
            f"{name} ({ev.versions[name]}): {st.unlabelled} reported flows have no "
            f"label (ignored); {st.unparsed} TCP/UDP flows with unreadable addresses."
        )
        notes += failure_notes(name, [r.runs[name] for r in ev.captures])
    notes.append(
        "Peer labels mapped generously (bench/accuracy.py module doc): RTP/RTCP/SRTP/IAX, "
        "'*Call'/'*Voip' app names and real-time apps on UDP -> voip-media; SIP/H323/Skinny/"
        "MGCP/Megaco -> voip-signaling; plain STUN/TURN/DTLS -> voip-signaling (ICE); "
        "tshark: any rtp/rtcp/srtp/iax2/t38 packet -> voip-media."
    )
    notes.append(f"Whole run: {ev.seconds:.1f} s wall.")
    return notes


def failure_notes(name: str, runs: Sequence[ToolRun]) -> list[str]:
    """One line per distinct failure of a tool, naming up to three captures."""
    by_error: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in runs:
        if run.status != "ok":
            by_error[(run.status, run.error)].append(run.capture)
    notes = []
    for (status, error), captures in by_error.items():
        more = f" and {len(captures) - 3} more" if len(captures) > 3 else ""
        notes.append(f"{name} {status} on {', '.join(captures[:3])}{more}: {error}")
    return notes


def render(tables: Sequence[TextTable], notes: Sequence[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for t in tables:
            print(plain_table(t))
        print("\n".join(f"* {n}" for n in notes))
        return
    console = Console(width=None if sys.stdout.isatty() else 220)
    for t in tables:
        table = Table(title=t.title, title_justify="left", caption="\n".join(t.notes) or None)
        for i, col in enumerate(t.columns):
            table.add_column(col, justify="left" if i == 0 else "right", overflow="fold")
        for row in t.rows:
            table.add_row(*row)
        console.print(table)
    for n in notes:
        console.print(f"* {n}", highlight=False, markup=False)


def plain_table(t: TextTable) -> str:
    widths = [max(len(r[i]) for r in [t.columns, *t.rows]) for i in range(len(t.columns))]
    lines = ["", t.title, "  ".join(c.ljust(w) for c, w in zip(t.columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in t.rows]
    return "\n".join(lines + t.notes)


# ---------------------------------------------------------------------------------------
# JSON


def to_json(ev: Evaluation, dis: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for name in ev.tools:
        st = ev.stats[name]
        tools[name] = {
            "version": ev.versions[name],
            "runs": dict(st.runs),
            "seconds": round(st.seconds, 3),
            "classes": {c: s.to_dict() for c, s in st.classes.items()},
            "confusion": {e: {p: st.confusion[(e, p)] for p in CATEGORIES} for e in CATEGORIES},
            "protocol_accuracy": st.protocol.to_dict(),
            "protocol_accuracy_by_protocol": {
                k: v.to_dict() for k, v in sorted(st.protocol_by_name.items())
            },
            "app_accuracy": st.app.to_dict(),
            "app_accuracy_by_app": {k: v.to_dict() for k, v in sorted(st.app_by_name.items())},
            "unlabelled_flows": st.unlabelled,
            "unparsed_flows": st.unparsed,
        }
    per_capture = []
    for r in ev.captures:
        entry: dict[str, Any] = {
            "capture": r.capture,
            "labelled_flows": len(r.labels),
            "unscored_flows": len(r.unscored),
            "voip_expected": sum(1 for lab in r.labels.values() if lab.category in VOIP),
            "tools": {},
        }
        for name, run in r.runs.items():
            s = binary_scores(r.labels, run.flows)
            entry["tools"][name] = {
                "status": run.status,
                "error": run.error or None,
                "seconds": round(run.seconds, 3),
                "voip_found": s.tp,
                "false_positives": s.fp,
                "missed": s.fn,
            }
        per_capture.append(entry)
    detection = None
    if "voipscope" in ev.tools:
        detection = median_detection(
            v for r in ev.captures for v in r.runs["voipscope"].flows.values()
        )
    return {
        "generated_by": "bench/accuracy.py",
        "seconds": round(ev.seconds, 3),
        "tools": tools,
        "captures": per_capture,
        "skipped_captures": ev.skipped,
        "label_warnings": ev.label_warnings,
        "voipscope_detected_at_packet": detection,
        "disagreements": list(dis),
        "peer_mapping": mapping_tables(),
    }


def mapping_tables() -> dict[str, Any]:
    return {
        "ndpi_media": sorted(NDPI_MEDIA),
        "ndpi_signaling": sorted(NDPI_SIGNALING),
        "ndpi_nat_as_voip_signaling": sorted(NDPI_NAT),
        "ndpi_call_suffixes_as_voip_media": list(NDPI_CALL_SUFFIXES),
        "ndpi_realtime_apps_on_udp_as_voip_media": sorted(REALTIME_APPS),
        "ndpi_masters_never_media": sorted(NDPI_NOT_MEDIA_MASTERS),
        "ndpi_protocol_names": NDPI_PROTOCOL_NAMES,
        "tshark_media": list(TSHARK_MEDIA),
        "tshark_signaling": list(TSHARK_SIGNALING),
        "tshark_nat_as_voip_signaling": list(TSHARK_NAT),
        "tshark_protocol_names": TSHARK_PROTOCOL_NAMES,
        "protocol_aliases": PROTOCOL_ALIASES,
        "app_aliases": {k: list(v) for k, v in APP_ALIASES.items()},
    }


# ---------------------------------------------------------------------------------------
# CLI


def find_captures(directory: Path, names: Sequence[str] | None) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.suffix in CAPTURE_SUFFIXES)
    if not names:
        return files
    wanted = set(names)
    return [p for p in files if p.name in wanted or p.stem in wanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES, help="capture directory")
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="label directory")
    ap.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated, from: " + ", ".join(TOOLS)
    )
    ap.add_argument("--json", type=Path, help="write all numbers and disagreements here")
    ap.add_argument(
        "--capture",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="only these captures (file name or stem)",
    )
    ap.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per tool per capture"
    )
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="tool runs at the same time"
    )
    ap.add_argument(
        "--max-disagreements",
        type=int,
        default=20,
        help="rows of the disagreement table to print (all are in --json)",
    )
    ap.add_argument(
        "--behaviour",
        action="store_true",
        help="instead: leave-one-app-out evaluation of the behavioural media model "
        "(bench/fit_behaviour.py, on these captures and labels plus generated traffic), and "
        "the shipped model's voip-media flow records after the arbiter (system view)",
    )
    args = ap.parse_args(argv)
    args.tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in args.tool_names if t not in TOOLS]
    if unknown:
        ap.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.captures.is_dir():
        print(f"accuracy: capture directory {args.captures} not found; nothing to do")
        return 0
    if args.behaviour:
        spec = importlib.util.spec_from_file_location(
            "fit_behaviour", Path(__file__).with_name("fit_behaviour.py")
        )
        assert spec is not None and spec.loader is not None
        fit_behaviour = importlib.util.module_from_spec(spec)
        # Registered before it runs: dataclasses look their module up in sys.modules.
        sys.modules["fit_behaviour"] = fit_behaviour
        spec.loader.exec_module(fit_behaviour)
        extra = ["--json", str(args.json)] if args.json else []
        # --system: also what the user sees (flow records with the shipped model, after
        # the arbiter), beside the held-out evaluation of the model alone.
        return int(fit_behaviour.main(["--evaluate-only", "--system", "--captures",
                                       str(args.captures), "--labels", str(args.labels),
                                       *extra]))  # fmt: skip
    captures = find_captures(args.captures, args.capture)
    ev = evaluate(captures, args.labels, args.tool_names, args.timeout, args.jobs)
    dis = disagreements(ev)
    tables = [summary_table(ev)]
    tables += [confusion_table(ev, t) for t in ev.tools if ev.versions[t] is not None]
    tables += [protocol_table(ev), app_table(ev), capture_table(ev)]
    detection = detection_table(ev)
    if detection is not None:
        tables.append(detection)
    if args.max_disagreements > 0:
        tables.append(disagreement_table(dis, ev.tools, args.max_disagreements))
    notes = footnotes(ev)
    if not ev.captures:
        where = "" if args.labels.is_dir() else f" (label directory {args.labels} not found)"
        tables, notes = [], [f"No labelled capture{where}; nothing scored.", notes[0]]
    render(tables, notes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(ev, dis), indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
