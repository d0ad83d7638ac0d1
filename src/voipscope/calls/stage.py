"""The calls stage: one FlowHooks that runs the RTP quality tracker and the dialog
trackers beside the flow table, and hands out finished Call records.

Per batch the pipeline calls ``on_init``/``on_update`` (RTP statistics, numba),
``on_messages`` (signalling messages in capture order), ``on_expire`` and
``on_flow_records`` (ended flows with their verdicts); ``drain`` then gives the calls
nothing can change any more, ``finish`` the rest at the end of the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voipscope.activity.talk_spurts import PAYLOAD_METHOD_NAMES
from voipscope.anomalies import AnomalyLog
from voipscope.arrow_columns import string_array
from voipscope.calls.app_calls import AppCallGrouper
from voipscope.calls.assembler import CallAssembler, flow_streams
from voipscope.calls.h323_calls import H323CallTracker
from voipscope.calls.iax2_calls import Iax2CallTracker
from voipscope.calls.mgcp_calls import MgcpCallTracker
from voipscope.calls.sccp_calls import SccpCallTracker
from voipscope.calls.sip_dialogs import SipCallsConfig, SipCallTracker
from voipscope.calls.tracked_calls import CallLimits
from voipscope.config import Config
from voipscope.decode.batch import DecodedBatch
from voipscope.flows.hooks import NoHooks
from voipscope.flows.table import FlowAssignment
from voipscope.quality.rtp_streams import MediaStream, RtpStreamTracker

VOIP_CATEGORIES = ("voip-media", "voip-signaling")
# Built from buffers: pa.array (and compute with Python scalars) probe for pandas, and
# importing it where it is installed costs ~50 MB of RSS per run (arrow_columns).
_VOIP_CATEGORY_SET = string_array(list(VOIP_CATEGORIES))
RTP_PROTOCOLS = frozenset({"RTP", "SRTP"})
CONTROL_PROTOCOLS = frozenset({"RTCP", "SRTCP"})


class CallsStage(NoHooks):
    def __init__(self, config: Config | None = None, anomalies: AnomalyLog | None = None) -> None:
        config = config or Config()
        c = config.calls
        self.rtp = RtpStreamTracker(config.flows.max_flows)
        sip_config = SipCallsConfig(
            max_open_dialogs=c.max_open_dialogs,
            finished_linger_s=c.finished_linger_s,
            auth_retry_gap_s=c.auth_retry_gap_s,
            answered_idle_s=c.answered_idle_s,
            redirect_follow_s=c.redirect_follow_s,
            b2bua_window_s=c.b2bua_window_s,
            out_of_dialog_records=c.out_of_dialog_records,
        )
        self.sip = SipCallTracker(sip_config, anomalies=anomalies)
        limits = CallLimits(
            max_open_calls=c.max_open_calls,
            finished_linger_s=c.finished_linger_s,
            idle_timeout_s=config.flows.idle_timeout_s,
            answered_idle_s=c.answered_idle_s,
        )
        self.trackers: list[Any] = [
            self.sip,
            H323CallTracker(limits, anomalies),
            MgcpCallTracker(limits, anomalies),
            Iax2CallTracker(limits, anomalies),
            SccpCallTracker(limits, anomalies),
        ]
        self.assembler = CallAssembler(
            config.flows.idle_timeout_s,
            app_calls=AppCallGrouper(join_gap_s=c.app_join_gap_s),
            max_held_calls=c.max_held_calls,
            max_waiting_media=c.max_held_calls,
        )

    # -- FlowHooks ------------------------------------------------------------------------

    def on_init(self, d: DecodedBatch, a: FlowAssignment, first_packets: np.ndarray) -> None:
        self.rtp.on_init(d, a, first_packets)

    def on_update(self, d: DecodedBatch, a: FlowAssignment) -> None:
        self.rtp.on_update(d, a)
        if len(d):
            self.assembler.advance(int(d.ts_ns[-1]) / 1e9)

    def on_clock(self, now_ns: int) -> None:
        """Live capture: capture time reached ``now_ns`` with no packet to say so (an
        idle link). Exchanges, calls and media that wait on time are let go as if a
        packet of that time had come."""
        self.sip.now_ns = max(self.sip.now_ns, now_ns)
        self.sip.sweep()
        for tracker in self.trackers:
            book = getattr(tracker, "book", None)  # the CallBook of H.323/MGCP/IAX2/SCCP
            if book is not None:
                book.advance(now_ns)
                book.sweep()
        self.assembler.advance(now_ns / 1e9)

    def on_messages(self, messages: list[object]) -> None:
        for tracker in self.trackers:
            tracker.on_messages(messages)

    def on_expire(self, ended: np.ndarray) -> None:
        self.rtp.on_expire(ended)
        for tracker in self.trackers:
            tracker.on_expire(ended)

    def on_flow_records(self, batch: object) -> None:
        assert isinstance(batch, pa.RecordBatch)
        voip = pc.is_in(batch.column("category"), value_set=_VOIP_CATEGORY_SET)
        chosen = batch.filter(voip)
        media_ids = set()
        others = []
        for flow in chosen.to_pylist():
            if flow["category"] == "voip-media":
                media_ids.add(flow["flow_id"])
                stats = self.rtp.pop(flow["flow_id"])
                if flow["protocol"] in RTP_PROTOCOLS and stats is not None and stats.streams:
                    streams = [_stream_record(s) for s in stats.streams]
                    if flow["protocol"] == "SRTP":
                        streams = [_encrypted(s) for s in streams]
                elif flow["protocol"] in CONTROL_PROTOCOLS:
                    streams = []  # RTCP reports on streams; it is not one
                else:
                    streams = flow_streams(flow)
                if stats is not None and any(stats.rtcp_packets):
                    flow = {**flow, "_rtcp_packets": stats.rtcp_packets}
                self.assembler.add_media(flow, streams, stats.rtcp if stats else None)
            else:
                others.append(flow)
        self.assembler.add_other_flows(others)
        # The tracker keeps results until asked; flows that were not media never will be.
        for flow_id in batch.column("flow_id").to_pylist():
            if flow_id not in media_ids:
                self.rtp.discard(flow_id)

    # -- output ---------------------------------------------------------------------------

    def drain(self) -> list[dict[str, Any]]:
        for tracker in self.trackers:
            for record in tracker.drain():
                self.assembler.add_call(_as_dict(record))
        return self.assembler.ready()

    def finish(self) -> list[dict[str, Any]]:
        for tracker in self.trackers:
            for record in tracker.finish():
                self.assembler.add_call(_as_dict(record))
        return self.assembler.finish()


def _as_dict(record: Any) -> dict[str, Any]:
    return record.to_record() if hasattr(record, "to_record") else dict(record)


def _encrypted(s: dict[str, Any]) -> dict[str, Any]:
    """An SRTP stream (RFC 3711 §3.1: the payload is encrypted; the header is not): what
    the kernel read from its payload was ciphertext decoded as audio (G.711 frames of
    random bytes: loud white noise, never a talk spurt), so it is withdrawn. Sizes, gaps
    and markers stay: the header and the datagram's length are in the clear."""
    if s.get("activity_method") in PAYLOAD_METHOD_NAMES:
        s["talk_spurts"] = None
        s["activity_method"] = None
        s["activity_reason"] = (
            "the payload is encrypted (SRTP): the audio this codec's judgement reads is not "
            f"on the wire, and {s.get('codec') or 'its'} frames do not change size with speech"
        )
    s["tones"] = None
    s["tone_runs"] = []
    s["inband_dtmf"] = []
    s["payload_codec"] = None  # a TOC read from ciphertext would be chance
    return s


def _stream_record(stream: MediaStream) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies every spurt list.
    s = {name: getattr(stream, name) for name in MediaStream.__slots__}
    s["ssrc"] = f"0x{s['ssrc']:08X}"  # as Wireshark writes it
    s["clock_rate_hz"] = s.pop("clock_hz", None)
    s["mean_jitter_ms"] = s["jitter_ms"]
    return s
