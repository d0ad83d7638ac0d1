"""Calls of over-the-top apps (WhatsApp, Zoom, Teams, Meet, Signal, Telegram, Discord, ...)
grouped from their flows.

These apps have no signalling a monitor can read, so a call is what the flows say: the
media flows of one app from one user's address that overlap or follow each other within
``join_gap_s`` belong to one call. Participants are the far ends of those flows; a far end
inside the app's published address ranges is the app's relay (or SFU), any other address
is a peer reached directly (peer-to-peer after ICE). App signalling flows (TURN
allocations, reflector pings) in the same window join the call as signalling, but never
make one on their own: apps allocate relays at start-up without calling anyone.

Works on Flow records (DESIGN §3), so flow-record input gets app calls too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from voipscope.addresses import format_endpoint
from voipscope.classify.apps import app_for_address

MEDIA = "voip-media"
SIGNALING = "voip-signaling"
# Protocols that carry their own call signalling: their calls come from the dialog trackers.
DIALOG_PROTOCOLS = frozenset({"SIP", "MGCP", "MEGACO", "H.323", "SCCP", "IAX2", "H.225 RAS"})
CONTROL_PROTOCOLS = frozenset({"RTCP", "SRTCP"})
JOIN_GAP_S = 30.0  # a new media flow this soon after the last one ended is the same call
# A call needs media both ways for at least this many packets per direction to count as
# answered (one-way media is a ringing tone, a failed ICE check or a one-way fault).
ANSWERED_MIN_PACKETS = 10
MAX_OPEN_CALLS = 65536  # (app, user address) groups held at once
MAX_SIGNALING_AGE_S = 6 * 3600.0  # app signalling waits this long for media to join
MAX_SIGNALING_PER_USER = 256
SCAN_STEP_S = 1.0  # capture time between two scans for calls to hand out


@lru_cache(maxsize=65536)
def is_local(ip: str) -> bool:
    """Private, link-local, CGNAT (RFC 6598) or otherwise not globally routable."""
    try:
        return not ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


class PendingSignal(NamedTuple):
    """What a call needs of an app signalling flow. The flow records themselves are not
    kept: signalling waits hours for media, and whole records (evidence and all) of every
    user's allocations and pings over those hours made the calls run's memory grow with
    the capture."""

    flow_id: int
    first_seen: float
    last_seen: float


def _through_turn(flow: dict[str, Any]) -> bool:
    """The flow's own bytes were TURN: a dissector's evidence line for TURN, or media
    found inside ChannelData (dissect/turn.py, dissect/rtp.py)."""
    return flow.get("protocol") == "TURN" or any(
        line.startswith("TURN:") or "inside TURN ChannelData" in line
        for line in flow.get("evidence") or []
    )


@dataclass(slots=True)
class AppCall:
    app: str
    user_ip: str
    start: float
    end: float
    media: list[dict[str, Any]] = field(default_factory=list)
    signaling: list[PendingSignal] = field(default_factory=list)

    def add(self, flow: dict[str, Any]) -> None:
        """A media flow of the call."""
        self.media.append(flow)
        self.start = min(self.start, flow["first_seen"])
        self.end = max(self.end, flow["last_seen"])

    def to_record(self) -> dict[str, Any]:
        media = sorted(self.media, key=lambda f: (f["first_seen"], f["flow_id"]))
        peers: list[str] = []
        relayed = direct = through_turn = 0
        for flow in media:
            far = _far_end(flow, self.user_ip)
            if far not in peers:
                peers.append(far)
            # A flow whose bytes spoke TURN (Allocate, ChannelData) is relayed, whoever
            # runs the server. Any provider's published range is infrastructure (relay,
            # SFU, TURN): users' devices do not live there. Outside them it is the peer
            # itself after ICE, or a relay nobody published; the evidence says so rather
            # than guessing.
            far_ip = far.rsplit(":", 1)[0].strip("[]")
            if _through_turn(flow):
                through_turn += 1
                relayed += 1
            elif app_for_address(far_ip) is not None:
                relayed += 1
            else:
                direct += 1
        both_ways = any(min(media_packets(f)) >= ANSWERED_MIN_PACKETS for f in media)
        what = f"{len(media)} {self.app or 'unattributed'} media flow(s) from {self.user_ip}"
        if self.signaling:
            what += f" with {len(self.signaling)} signalling flow(s)"
        evidence = [
            what,
            f"media both ways (≥{ANSWERED_MIN_PACKETS} packets each way)"
            if both_ways
            else f"no flow with ≥{ANSWERED_MIN_PACKETS} packets each way",
        ]
        if through_turn:
            evidence.append(f"{through_turn} media flow(s) through a TURN relay (RFC 8656)")
        if relayed > through_turn:
            evidence.append(
                f"{relayed - through_turn} media flow(s) to published app server ranges (relay)"
            )
        if direct:
            evidence.append(
                f"{direct} media flow(s) to addresses in no published range (the peer "
                "directly, or an unlisted relay)"
            )
        kinds = sorted({f["media"] for f in media if f.get("media")})
        if kinds:
            evidence.append(f"media: {', '.join(kinds)}")
        path = "relay" if not direct else "direct" if not relayed else "relay and direct"
        evidence.append(f"path: {path}")
        return {
            "call_id": f"{self.app or 'media-only'}:{self.user_ip}:{self.start:.6f}",
            "capture": media[0].get("capture"),
            # The media's own protocol, not the RTCP that reports on it.
            "protocol": next(
                (f["protocol"] for f in media if f["protocol"] not in CONTROL_PROTOCOLS),
                media[0]["protocol"],
            ),
            # Media no app could be named for, without signalling: a call of someone.
            "kind": "app-call" if self.app else "media-only",
            "app": self.app or None,
            "caller": self.user_ip,
            "callee": ", ".join(peers),
            "request_uri": None,
            "path": path,
            "start": self.start,
            "answer": None,
            "end": self.end,
            "duration_s": self.end - self.start,
            # Without signalling, "answered" means voice went both ways; nothing shows who
            # called whom or whether a one-way call was refused, so that is "unanswered".
            "state": "answered" if both_ways else "unanswered",
            "final_code": None,
            "redirected_to": [],
            "related_calls": [],
            "streams": [],
            "signaling_flows": sorted(f.flow_id for f in self.signaling),
            "media_flows": [f["flow_id"] for f in media],
            "messages": None,
            "dtmf": [],
            "user_agents": [],
            "evidence": evidence,
        }


def media_packets(flow: dict[str, Any]) -> tuple[int, int]:
    """Media packets each way: what the flow's RTP/SRTP streams counted, set by the
    assembler as ``_media_packets``; the flow's packets where the media is not RTP
    (proprietary or encrypted framings)."""
    counted = flow.get("_media_packets")
    if counted is not None:
        return counted
    return flow["src2dst_packets"], flow["dst2src_packets"]


def _far_end(flow: dict[str, Any], user_ip: str) -> str:
    ip, port = (
        (flow["dst_ip"], flow["dst_port"])
        if flow["src_ip"] == user_ip
        else (flow["src_ip"], flow["src_port"])
    )
    return format_endpoint(ip, port)


def user_address(flow: dict[str, Any]) -> str:
    """The app user's side of a flow: the non-routable end, else the side that began it."""
    src, dst = flow["src_ip"], flow["dst_ip"]
    if is_local(dst) and not is_local(src):
        return dst
    return src


def is_app_call_flow(flow: dict[str, Any]) -> bool:
    return (
        flow.get("category") in (MEDIA, SIGNALING)
        and flow.get("call_id") is None
        and flow.get("protocol") not in DIALOG_PROTOCOLS
        and (flow.get("app") is not None or flow.get("category") == MEDIA)
    )


class AppCallGrouper:
    """Streaming: feed ended flows (in any order of their end), get calls once the
    capture clock has moved ``join_gap_s`` past their last media; ``finish`` at the end."""

    def __init__(self, join_gap_s: float = JOIN_GAP_S, max_open: int = MAX_OPEN_CALLS) -> None:
        self.join_gap_s = join_gap_s
        self.max_open = max_open
        self._open: dict[tuple[str, str], list[AppCall]] = {}
        self._pending_signaling: dict[tuple[str, str], list[PendingSignal]] = {}
        self.overflowed = 0
        self._scanned_to = float("-inf")

    def add(self, flows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        latest = None
        for flow in flows:
            if not is_app_call_flow(flow):
                continue
            app = flow.get("app") or ""  # media no app could be named for
            key = (app, user_address(flow))
            latest = flow["last_seen"] if latest is None else max(latest, flow["last_seen"])
            if flow["category"] == MEDIA:
                self._media(key, flow)
            else:
                pending = self._pending_signaling.setdefault(key, [])
                pending.append(
                    PendingSignal(flow["flow_id"], flow["first_seen"], flow["last_seen"])
                )
                if len(pending) > MAX_SIGNALING_PER_USER:
                    del pending[0]  # the oldest can least likely still join a call
        # Scanning every open call costs; capture time must move on a second between scans.
        if latest is not None and latest - self.join_gap_s >= self._scanned_to + SCAN_STEP_S:
            self._scanned_to = latest - self.join_gap_s
            yield from self._close(before=self._scanned_to)

    def finish(self) -> Iterator[dict[str, Any]]:
        yield from self._close(before=None)

    def _media(self, key: tuple[str, str], flow: dict[str, Any]) -> None:
        calls = self._open.setdefault(key, [])
        for call in calls:
            if call.start - self.join_gap_s <= flow["first_seen"] <= call.end + self.join_gap_s:
                call.add(flow)
                return
        if sum(len(group) for group in self._open.values()) >= self.max_open:
            self.overflowed += 1  # counted; the flow keeps its flow record
            return
        call = AppCall(key[0], key[1], flow["first_seen"], flow["last_seen"])
        call.add(flow)
        calls.append(call)

    def _close(self, before: float | None) -> Iterator[dict[str, Any]]:
        done: list[AppCall] = []
        for key, calls in list(self._open.items()):
            keep = []
            for call in calls:
                (done if before is None or call.end < before else keep).append(call)
            if keep:
                self._open[key] = keep
            else:
                del self._open[key]
        for call in done:
            key = (call.app, call.user_ip)
            for signal in self._pending_signaling.get(key, []):
                lo, hi = call.start - self.join_gap_s, call.end + self.join_gap_s
                if lo <= signal.first_seen <= hi:
                    call.signaling.append(signal)
                    call.start = min(call.start, signal.first_seen)
        if before is None:
            self._pending_signaling.clear()
        else:
            # Media flows are handed over when they end, maybe hours after the signalling
            # that set them up: keep signalling for a long while, bounded per user.
            horizon = before - MAX_SIGNALING_AGE_S
            for key in list(self._pending_signaling):
                kept = [f for f in self._pending_signaling[key] if f.last_seen >= horizon]
                if kept:
                    self._pending_signaling[key] = kept
                else:
                    del self._pending_signaling[key]
        for call in sorted(done, key=lambda c: (c.start, c.app, c.user_ip)):
            yield call.to_record()
