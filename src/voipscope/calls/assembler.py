"""Calls meet their media: dialog records from the signalling trackers, media flows with
their RTP streams from the quality stage, joined into the Call records of DESIGN §3.

How a media flow finds its call, surest first:
1. ``call_id`` on the Flow record: the dissect stage matched the flow's address to an SDP
   (or MGCP/H.245) announcement of that call (classify/arbiter carries it over).
2. An SSRC the call's SDP announced (RFC 5576 ``a=ssrc``, WebRTC and many SBCs) on a flow
   that started while the call was up: whatever its addresses (TURN relays, NAT).
3. Behind NAT the media comes from another address than the SDP said (symmetric RTP,
   RFC 4961; latching): a flow one of whose ports is a port the call announced, starting
   while the call was up, belongs to it with less confidence.
4. Otherwise it is no dialog's media: the app-call grouper (calls.app_calls) gets it.

Streaming and bounded: a call is handed out once capture time has passed its end by the
flow idle timeout (its media flows have ended by then); unpaired media waits a while for
a call that may still arrive; both waits are capped in count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from voipscope.activity.conversation import conversation
from voipscope.calls.app_calls import AppCallGrouper
from voipscope.calls.media_outages import missing_media_evidence, outage_evidence
from voipscope.quality.clock_candidates import CLOCK_FROM_TABLE
from voipscope.quality.clock_candidates import resolve as resolve_clock
from voipscope.quality.rtcp_reports import reported_only, rtcp_figures
from voipscope.quality.stream_mos import stream_scores

# Where a stream's codec name came from (the stream record's ``codec_source``).
CODEC_FROM_SDP = "SDP rtpmap"
CODEC_FROM_TABLE = "payload type table (RFC 3551)"
CODEC_FROM_PAYLOAD = "the payloads' own bytes (Opus TOC, RFC 6716 §3.1)"

MEDIA_PROTOCOLS = frozenset({"RTP", "RTCP", "SRTP", "SRTCP", "T.38", "IAX2", "ZRTP"})
PORT_PAIRING_CONFIDENCE = 0.7  # same port as announced, other address (NAT), in the call's time
SSRC_PAIRING_CONFIDENCE = 0.9  # an SSRC the SDP announced (a=ssrc), in the call's time
CALL_ID_PAIRING_CONFIDENCE = 0.95  # address and port as announced (the dissect expectation)
# The flow to a TURN relay whose allocated address the SDP announced (classify.arbiter).
RELAYED_PAIRING = ("sdp-relayed (TURN)", 0.9)
MAX_HELD_CALLS = 100_000
MAX_WAITING_MEDIA = 100_000
MAX_STREAMS_PER_CALL = 64
# A media stream that starts this long after the call's first two did is no longer the
# call's own start-up: it may be a party joining (conference, barge-in), see _parties.
JOIN_AFTER_S = 2.0
APP_KINDS = frozenset({"app-call", "media-only"})


@dataclass(slots=True)
class _Held:
    record: dict[str, Any]
    release_s: float  # hand out once capture time passes this
    ports: frozenset[int]
    rtpmap: dict[int, str]
    ssrcs: frozenset[int]
    media: list[tuple[dict[str, Any], list[dict[str, Any]], str, float]] = field(
        default_factory=list
    )  # (flow, streams, pairing, confidence)


class CallAssembler:
    def __init__(
        self,
        flow_idle_timeout_s: float,
        app_calls: AppCallGrouper | None = None,
        max_held_calls: int = MAX_HELD_CALLS,
        max_waiting_media: int = MAX_WAITING_MEDIA,
    ) -> None:
        # Media of a call ends at most one idle timeout after the call's last packet.
        self.grace_s = flow_idle_timeout_s + 5.0
        self.app_calls = app_calls or AppCallGrouper()
        self.max_held_calls = max_held_calls
        self.max_waiting_media = max_waiting_media
        self.now_s = 0.0
        self._held: OrderedDict[str, _Held] = OrderedDict()
        # Call-ID -> keys in _held, oldest first (the oldest record of a Call-ID gets media)
        self._keys_of_call: dict[str, list[str]] = {}
        # call_id -> media flows that ended before their call's record arrived
        self._early: OrderedDict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]] = (
            OrderedDict()
        )
        # media flows without a call_id, waiting for a call announcing one of their ports
        self._unpaired: OrderedDict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = (
            OrderedDict()
        )
        self._app_streams: dict[int, list[dict[str, Any]]] = {}
        self._app_rtcp: dict[int, list[dict[str, Any]]] = {}
        self._out: list[dict[str, Any]] = []
        self.dropped = 0  # records or flows given up because a cap was reached

    # -- input ----------------------------------------------------------------------------

    def add_call(self, record: dict[str, Any]) -> None:
        """A finished dialog record (SIP call, registration, H.323/MGCP/IAX2/SCCP call)."""
        # A record handed in again (same record id) replaces itself; records of other
        # protocols have none, and two of one Call-ID (an H.323 call, then RAS about it
        # after it was let go) are two records, not one replacing the other.
        key = record.get("record_id") or f"{record['call_id']}@{record.get('start')}"
        if record.get("kind") not in (None, "call"):
            self._out.append(_finish(record, []))  # registrations etc.: no media
            return
        endpoints = list(_announced(record))
        held = _Held(
            record,
            release_s=max(self.now_s, _last_time(record)) + self.grace_s,
            ports=frozenset(p for _, p, _ in endpoints if p),
            rtpmap={pt: codec for _, _, rtpmap in endpoints for pt, codec in rtpmap.items()},
            ssrcs=frozenset(_announced_ssrcs(record)),
        )
        call_id = record.get("call_id")
        for flow, streams in self._early.pop(call_id, []) if call_id else []:
            held.media.append((flow, streams, *_pinned(flow)))
        for flow_id, (flow, streams) in list(self._unpaired.items()):
            how = self._fits(held, flow, streams)
            if how is not None:
                held.media.append((flow, streams, *how))
                del self._unpaired[flow_id]
        if len(self._held) >= self.max_held_calls:
            self._release(next(iter(self._held)))
            self.dropped += 1
        self._held[key] = held
        if call_id:
            keys = self._keys_of_call.setdefault(call_id, [])
            if key not in keys:  # a record handed in again replaces itself
                keys.append(key)

    def add_media(
        self,
        flow: dict[str, Any],
        streams: list[dict[str, Any]],
        rtcp: list[dict[str, Any]] | None = None,
    ) -> None:
        """An ended media flow (Flow record), its per-direction streams and the RTCP
        reports seen on it (quality.rtp_streams RtpFlowStats.rtcp)."""
        if rtcp:
            flow = {**flow, "_rtcp": rtcp}
        self.now_s = max(self.now_s, flow["last_seen"])
        call_id = flow.get("call_id")
        if call_id:
            keys = self._keys_of_call.get(call_id)
            if keys:
                self._held[keys[0]].media.append((flow, streams, *_pinned(flow)))
                return
            early = self._early.setdefault(call_id, [])
            early.append((flow, streams))
            if len(self._early) > self.max_waiting_media:
                self._early.popitem(last=False)
                self.dropped += 1
            return
        for held in self._held.values():
            how = self._fits(held, flow, streams)
            if how is not None:
                held.media.append((flow, streams, *how))
                return
        self._unpaired[flow["flow_id"]] = (flow, streams)
        if len(self._unpaired) > self.max_waiting_media:
            self._to_app_calls([self._unpaired.popitem(last=False)[1]])

    def add_other_flows(self, flows: Iterable[dict[str, Any]]) -> None:
        """Ended non-media flows: app signalling for the app-call grouper, and the clock."""
        rows = list(flows)
        for flow in rows:
            self.now_s = max(self.now_s, flow["last_seen"])
        self._app_out(self.app_calls.add(rows))

    def advance(self, now_s: float) -> None:
        self.now_s = max(self.now_s, now_s)

    # -- output ---------------------------------------------------------------------------

    def ready(self) -> list[dict[str, Any]]:
        """Calls (and app calls, registrations) that nothing can change any more."""
        for key, held in list(self._held.items()):
            if held.release_s < self.now_s:
                self._release(key)
        waited = [
            fid
            for fid, (flow, _) in self._unpaired.items()
            if flow["last_seen"] + self.grace_s < self.now_s
        ]
        self._to_app_calls([self._unpaired.pop(fid) for fid in waited])
        out, self._out = self._out, []
        return out

    def finish(self) -> list[dict[str, Any]]:
        for key in list(self._held):
            self._release(key)
        for call_id, media in self._early.items():
            # Media pinned to a call whose record never came (capture began mid-call).
            for flow, streams in media:
                flow = {**flow, "call_id": None, "_orphan_call_id": call_id}
                self._unpaired[flow["flow_id"]] = (flow, streams)
        self._early.clear()
        self._to_app_calls(list(self._unpaired.values()))
        self._unpaired.clear()
        self._app_out(self.app_calls.finish())
        out, self._out = self._out, []
        return out

    # -- internals ------------------------------------------------------------------------

    def _fits(
        self, held: _Held, flow: dict[str, Any], streams: list[dict[str, Any]]
    ) -> tuple[str, float] | None:
        """How an unpinned media flow belongs to a held call, if it does: an SSRC the
        call's SDP announced (RFC 5576 a=ssrc; any address, TURN relays included), else
        an announced port during the call (NAT)."""
        record = held.record
        start = record.get("answer") or record.get("start") or 0.0
        end = _last_time(record)
        if not start - 2.0 <= flow["first_seen"] <= end + 2.0:
            return None
        if held.ssrcs and any(_ssrc(s) in held.ssrcs for s in streams):
            return "sdp-ssrc", SSRC_PAIRING_CONFIDENCE
        if held.ports and (flow["src_port"] in held.ports or flow["dst_port"] in held.ports):
            return "sdp-port+time (NAT)", PORT_PAIRING_CONFIDENCE
        return None

    def _release(self, key: str) -> None:
        held = self._held.pop(key)
        call_id = held.record.get("call_id")
        keys = self._keys_of_call.get(call_id) if call_id else None
        if keys and key in keys:
            keys.remove(key)
            if not keys:
                del self._keys_of_call[call_id]
        streams: list[dict[str, Any]] = []
        media_flows: list[int] = []
        for flow, flow_streams, pairing, confidence in sorted(
            held.media, key=lambda m: (m[0]["first_seen"], m[0]["flow_id"])
        ):
            media_flows.append(flow["flow_id"])
            for stream in flow_streams:
                if len(streams) < MAX_STREAMS_PER_CALL:
                    streams.append(
                        _with_quality(stream, held.rtpmap)
                        | {"pairing": pairing, "pairing_confidence": confidence}
                    )
        record = held.record
        record["rtcp_only_streams"] = _add_rtcp(
            streams, [(flow, r) for flow, *_ in held.media for r in flow.get("_rtcp", ())]
        )
        record["media_flows"] = media_flows
        self._out.append(_finish(record, streams))

    def _to_app_calls(self, media: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        flows = []
        for flow, streams in media:
            if len(self._app_streams) < self.max_waiting_media:
                self._app_streams[flow["flow_id"]] = streams
                if flow.get("_rtcp"):
                    self._app_rtcp[flow["flow_id"]] = flow
            if any(s.get("ssrc") for s in streams):
                # Measured RTP/SRTP: what went each way is the streams' packets and the
                # RTCP (an endpoint reporting on what it receives takes part in the media
                # session, muted or not), not the flow's packets. Over TCP the segments
                # acknowledging media are no media the other way; over UDP neither are
                # ICE consent checks (a STUN Binding each way every few seconds, RFC
                # 7675, from before the call is answered) beside one-way media.
                ends = (flow["src_ip"], flow["src_port"])
                forward = sum(s["packets"] for s in streams if (s["src_ip"], s["src_port"]) == ends)
                backward = sum(s["packets"] for s in streams) - forward
                rtcp_forward, rtcp_backward = flow.get("_rtcp_packets", (0, 0))
                flow = {
                    **flow,
                    "_media_packets": (forward + rtcp_forward, backward + rtcp_backward),
                }
            flows.append(flow)
        self._app_out(self.app_calls.add(flows))

    def _app_out(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            streams = [
                _with_quality(s, {}) | {"pairing": "app flow", "pairing_confidence": None}
                for flow_id in record["media_flows"]
                for s in self._app_streams.pop(flow_id, [])
            ]
            flows = [self._app_rtcp.pop(f, None) for f in record["media_flows"]]
            reports = [(f, r) for f in flows if f is not None for r in f["_rtcp"]]
            record = {**record, "rtcp_only_streams": _add_rtcp(streams, reports)}
            self._out.append(_finish(record, streams[:MAX_STREAMS_PER_CALL]))


def _add_rtcp(
    streams: list[dict[str, Any]], reports: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[dict[str, Any]]:
    """What the far end's RTCP said about each stream, beside what was measured
    (``reports``: each with the media flow it came on). Returns the streams only RTCP
    tells of: reported on, but no RTP of theirs in the capture (one-sided capture,
    media on a path the capture does not see, media the bytes could not read)."""
    if not reports:
        return []
    ssrc_of = {}
    for s in streams:
        try:
            ssrc_of[id(s)] = int(str(s.get("ssrc")), 16)
        except ValueError:
            continue
    clocks = {ssrc_of[id(s)]: s.get("clock_rate_hz") for s in streams if id(s) in ssrc_of}
    figures = rtcp_figures([r for _, r in reports], {k: v for k, v in clocks.items() if v})
    for s in streams:
        found = figures.get(ssrc_of.get(id(s), -1))
        if found:
            s.update(found)
    return reported_only(reports, set(ssrc_of.values()))


def _pinned(flow: dict[str, Any]) -> tuple[str, float]:
    """How a flow the dissect stage gave a call id belongs to it."""
    if any(line.startswith("relayed: ") for line in flow.get("evidence") or []):
        return RELAYED_PAIRING
    return "sdp-address", CALL_ID_PAIRING_CONFIDENCE


def flow_streams(flow: dict[str, Any]) -> list[dict[str, Any]]:
    """Streams of a media flow without readable RTP (proprietary or encrypted framing):
    one per direction with what the flow counters know; quality stays unknown."""
    what = flow.get("protocol") or "media"
    if flow.get("proto") == "tcp" and what in ("RTP", "SRTP", "RTCP"):
        # RFC 4571 or TURN over TCP, but quality.tcp_framing found no segment of whole
        # packets to follow the byte stream from (e.g. every packet spans segments).
        mos_reason = jitter_reason = (
            f"{what} over TCP: its packets could not be cut from the byte stream"
        )
        activity_reason = mos_reason
    else:
        mos_reason = f"{what} framing has no RTP sequence numbers to measure loss and jitter"
        jitter_reason = f"{what} framing has no RTP timestamps"
        activity_reason = f"{what} framing: no RTP to read who talks from"
    out = []
    for direction, (src, dst) in enumerate((("src", "dst"), ("dst", "src"))):
        packets = flow["src2dst_packets" if direction == 0 else "dst2src_packets"]
        if not packets:
            continue
        out.append(
            {
                "flow_id": flow["flow_id"],
                "src_ip": flow[f"{src}_ip"],
                "src_port": flow[f"{src}_port"],
                "dst_ip": flow[f"{dst}_ip"],
                "dst_port": flow[f"{dst}_port"],
                "codec": None,
                "packets": packets,
                "first_seen": flow["first_seen"],
                "last_seen": flow["last_seen"],
                "mos_reason": mos_reason,
                "jitter_reason": jitter_reason,
                "activity_reason": activity_reason,
            }
        )
    return out


def _announced(record: dict[str, Any]) -> Iterable[tuple[str | None, int, dict[int, str]]]:
    """(ip, port, {payload type: codec}) of every media line the signalling announced."""
    for exchange in record.get("sdp") or []:
        for m in exchange.get("media") or []:
            # codecs has one entry per format, payload_types one per numeric format: they
            # pair up only when every format is a payload type number (RFC 3551 §3).
            pts, names = m.get("payload_types") or [], m.get("codecs") or []
            codecs = dict(zip(pts, names, strict=True)) if len(pts) == len(names) else {}
            yield m.get("ip"), int(m.get("port") or 0), codecs
            # ICE candidates (RFC 8839) are more addresses of the same media; exact ones
            # already pinned their flows in the dissect stage, their ports help behind NAT.
            for candidate in m.get("candidates") or []:
                ip, port = candidate[0], candidate[1]
                yield ip, int(port or 0), {}
    for m in record.get("media_endpoints") or []:
        yield m.get("ip"), int(m.get("port") or 0), {}


def _announced_ssrcs(record: dict[str, Any]) -> set[int]:
    return {
        int(ssrc)
        for exchange in record.get("sdp") or []
        for m in exchange.get("media") or []
        for ssrc in m.get("ssrcs") or []
    }


def _ssrc(stream: dict[str, Any]) -> int | None:
    try:
        return int(str(stream.get("ssrc")), 16)
    except ValueError:
        return None


def _last_time(record: dict[str, Any]) -> float:
    for name in ("end", "last_message", "answer", "start"):
        value = record.get(name)
        if value is not None:
            return float(value)
    return 0.0


def _with_quality(stream: dict[str, Any], rtpmap: dict[int, str]) -> dict[str, Any]:
    """The jitter of a dynamic payload type by the call's SDP clock (or one its own
    timestamps prove); MOS by the E-model from the stream's codec and loss, with and
    without a de-jitter buffer's discards (quality.stream_mos), null with a reason
    otherwise."""
    out = dict(stream)
    announced = rtpmap.get(out.get("payload_type", -1))
    tabled = out.get("codec")
    codec = announced or tabled or out.get("payload_codec")
    if codec:
        out["codec"] = codec
    out["codec_source"] = (
        CODEC_FROM_SDP
        if announced
        else CODEC_FROM_TABLE
        if tabled
        else CODEC_FROM_PAYLOAD
        if codec
        else None
    )
    # Known only now that the stream met its call: which A.8 run was the right clock.
    out.update(resolve_clock(out, rtpmap))
    out.pop("clock_candidates", None)  # the kernel's internals end here
    out.pop("payload_codec", None)
    timing = out.get("timing")
    if (
        isinstance(timing, dict)
        and timing.get("clock_provisional")
        and out.get("clock_rate_hz") not in (None, timing.get("clock_hz"))
    ):
        # The transits were taken against a clock picked from the timestamps while the
        # flow ran; the SDP (or the whole stream) says another: they measure nothing.
        out["timing"] = None
    if out.get("clock_rate_hz") and out.get("clock_source") is None:
        out["clock_source"] = CLOCK_FROM_TABLE
    if out.get("mos") is None and out.get("packets") and out.get("mos_reason") is None:
        out.update(stream_scores(out, codec or out.get("payload_type")))
    reason = out.pop("jitter_unknown", None) or out.get("jitter_reason")
    out["jitter_reason"] = None if out.get("jitter_ms") is not None else reason
    return out


def _finish(record: dict[str, Any], streams: list[dict[str, Any]]) -> dict[str, Any]:
    """The record with its streams, the conversation shape, third parties joining and
    media outages."""
    record = dict(record)
    record["streams"] = streams
    evidence = list(record.get("evidence") or [])
    with_spurts = [s for s in streams if s.get("talk_spurts") is not None]
    if len(with_spurts) >= 2:
        a, b = with_spurts[0], with_spurts[1]
        start = record.get("answer") or record.get("start") or a["first_seen"]
        end = record.get("end") or max(s["last_seen"] for s in streams)
        shape = conversation(
            [tuple(x) for x in a["talk_spurts"]], [tuple(x) for x in b["talk_spurts"]], start, end
        )
        record.update(
            {
                "caller_talk_pct": shape["a_talk_pct"],
                "callee_talk_pct": shape["b_talk_pct"],
                "double_talk_pct": shape["double_talk_pct"],
                "silence_pct": shape["silence_pct"],
            }
        )
    participants, joined = parties(record, streams)
    record["participants"] = participants
    evidence.extend(joined)
    evidence.extend(outage_evidence(streams))
    evidence.extend(missing_media_evidence(record, streams))
    record["evidence"] = evidence
    return record


def parties(record: dict[str, Any], streams: list[dict[str, Any]]) -> tuple[int | None, list[str]]:
    """How many parties sent media, and an evidence line per party that joined later.

    A party is a signalled call's media endpoint (address and port: a phone's DTMF
    events or the new SSRC it sends after a re-INVITE are the same phone), an app call's
    user (however many streams it sends: audio, video, a new SSRC after a network
    change), or an SSRC from the app call's far end (an SFU forwards each speaker as one,
    through whichever relay; without SSRCs the far end is one party, its relays and
    peer addresses alike).
    The call's own parties sent the streams that began with it (within JOIN_AFTER_S of
    the first two). A later stream is another party joining (a conference, a barge-in, an
    SFU forwarding a new speaker) only when it comes from a new party, carries an SSRC,
    and the one it is sent to kept sending its own stream across that start: the
    conversation went on around the newcomer. A call set up again after a pause (new
    streams both ways, the old ones ended), a move to another relay, and streams without
    an SSRC (app framings: nothing tells one speaker from another) join nobody."""
    if not streams:
        return None, []
    signalled = record.get("kind") not in APP_KINDS
    user = None if signalled else record.get("caller")

    def source(s: dict[str, Any]) -> tuple[Any, Any]:
        if signalled:
            return (s["src_ip"], s["src_port"])
        if s["src_ip"] == user:
            return (user, None)
        if s.get("ssrc") is None:
            return (None, None)  # the far end: nothing tells its speakers apart
        return (None, s["ssrc"])  # one speaker, whichever relay forwards it

    ordered = sorted(streams, key=lambda s: s["first_seen"])
    began = ordered[min(1, len(ordered) - 1)]["first_seen"] + JOIN_AFTER_S
    seen = {source(s) for s in ordered if s["first_seen"] <= began}
    joined: list[str] = []
    for s in ordered:
        ssrc = s.get("ssrc")
        if s["first_seen"] <= began or ssrc is None or source(s) in seen:
            continue
        listener = (s["dst_ip"], s["dst_port"])
        went_on = any(
            (t["src_ip"], t["src_port"]) == listener
            and t["first_seen"] < s["first_seen"] - JOIN_AFTER_S
            and t["last_seen"] >= s["first_seen"]
            for t in ordered
        )
        if not went_on:
            continue
        seen.add(source(s))
        joined.append(
            f"another party joined at {s['first_seen']:.3f}: {s['src_ip']}:{s['src_port']} "
            f"SSRC {ssrc}, heard by {listener[0]}:{listener[1]} while its own stream went on"
        )
    return len(seen), joined
