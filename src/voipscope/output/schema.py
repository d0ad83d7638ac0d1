"""pyarrow schemas of the output records (DESIGN §3). One schema per record kind."""

from __future__ import annotations

import pyarrow as pa

FLOW_SCHEMA = pa.schema(
    [
        pa.field("flow_id", pa.int64(), nullable=False),
        pa.field("capture", pa.string()),
        pa.field("proto", pa.string(), nullable=False),
        pa.field("ip_version", pa.int8()),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.int32()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.int32()),
        pa.field("first_seen", pa.float64()),
        pa.field("last_seen", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("src2dst_packets", pa.int64()),
        pa.field("dst2src_packets", pa.int64()),
        pa.field("src2dst_bytes", pa.int64()),
        pa.field("dst2src_bytes", pa.int64()),
        pa.field("src2dst_tcp_flags", pa.string()),
        pa.field("dst2src_tcp_flags", pa.string()),
        pa.field("vlan", pa.int32()),
        pa.field("end_reason", pa.string()),
        pa.field("category", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("app", pa.string()),
        pa.field("media", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("evidence", pa.list_(pa.string())),
        pa.field("detected_at_packet", pa.int64()),
        pa.field("call_id", pa.string()),
    ]
)

ANOMALY_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("src_ip", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

# Media stream (DESIGN §3): one direction of RTP (or equivalent) inside a call.
STREAM_FIELDS = [
    pa.field("flow_id", pa.int64()),
    pa.field("src_ip", pa.string()),
    pa.field("src_port", pa.int32()),
    pa.field("dst_ip", pa.string()),
    pa.field("dst_port", pa.int32()),
    pa.field("ssrc", pa.string()),  # 0x-prefixed hex, as Wireshark shows it
    pa.field("payload_type", pa.int32()),
    pa.field("codec", pa.string()),
    # Where the codec name came from: "SDP rtpmap", "payload type table (RFC 3551)" or
    # "the payloads' own bytes (Opus TOC, RFC 6716 §3.1)" (calls.assembler); null: unknown.
    pa.field("codec_source", pa.string()),
    pa.field("clock_rate_hz", pa.int32()),
    # Where the clock (and so jitter in ms) came from: "payload type table (RFC 3551)",
    # "SDP rtpmap", "Opus payloads (RFC 7587 §4.1: 48 kHz)" or "inferred from RTP
    # timestamps" (quality.clock_candidates).
    pa.field("clock_source", pa.string()),
    pa.field("first_seen", pa.float64()),
    pa.field("last_seen", pa.float64()),
    pa.field("packets", pa.int64()),
    pa.field("lost", pa.int64()),
    pa.field("loss_pct", pa.float64()),
    pa.field("duplicates", pa.int64()),
    pa.field("out_of_order", pa.int64()),
    # Of ``lost``: missing across a capture-wide silence (the capture, not the network).
    pa.field("capture_gap_missing", pa.int64()),
    # Runs of consecutive packets lost on the wire, and G.107's burst ratio from them
    # (their mean length over random loss's at the same rate; null without loss).
    pa.field("loss_runs", pa.int64()),
    pa.field("burst_ratio", pa.float64()),
    # The longest stretch without a packet (length, start epoch s); media outages -- gaps
    # across which the sender went on numbering packets that never reached the capture
    # point (calls.media_outages) -- how many, seconds in all, the longest and its loss.
    pa.field("longest_gap_ms", pa.float64()),
    pa.field("longest_gap_start", pa.float64()),
    pa.field("outages", pa.int64()),
    pa.field("outage_s", pa.float64()),
    pa.field("longest_outage_ms", pa.float64()),
    pa.field("longest_outage_start", pa.float64()),
    pa.field("longest_outage_lost", pa.int64()),
    pa.field("jitter_ms", pa.float64()),  # RFC 3550 A.8 at the stream's end
    pa.field("mean_jitter_ms", pa.float64()),
    pa.field("max_jitter_ms", pa.float64()),
    pa.field("jitter_reason", pa.string()),  # why jitter_ms is null (no clock, no step)
    pa.field("max_delta_ms", pa.float64()),
    # What the far end reported about this stream in RTCP (RFC 3550 §6.4), beside the
    # measured figures: its last loss fraction, cumulative loss, jitter; RTT by LSR/DLSR.
    pa.field("rtcp_reports", pa.int64()),
    pa.field("rtcp_loss_pct", pa.float64()),
    pa.field("rtcp_cumulative_lost", pa.int64()),
    pa.field("rtcp_jitter_ms", pa.float64()),
    pa.field("rtcp_rtt_ms", pa.float64()),
    pa.field("mos", pa.float64()),  # null when it cannot be known; see mos_reason
    pa.field("r_factor", pa.float64()),
    pa.field("mos_reason", pa.string()),
    # Packets a fixed de-jitter buffer of 50 / 200 ms would discard as too late, and the
    # MOS with them counted lost (quality.stream_mos); null without a known clock or MOS.
    pa.field("jb50_late", pa.int64()),
    pa.field("jb200_late", pa.int64()),
    pa.field("mos_jb50", pa.float64()),
    pa.field("mos_jb200", pa.float64()),
    pa.field("talk_spurts", pa.list_(pa.list_(pa.float64()))),
    pa.field("activity_method", pa.string()),
    pa.field("activity_reason", pa.string()),  # why talk_spurts is null
    # G.711/L16 audio (activity.tones): share of loud frames that are one steady tone,
    # and DTMF heard in the audio itself (RFC 4733 events are in the call's dtmf).
    pa.field("tone_share", pa.float64()),
    pa.field("inband_dtmf", pa.list_(pa.string())),
    # Transit levels of the first window of 512 packets (the first coded window's, where
    # one is coded) against the stream's RTP clock
    # (activity.timing): one level is an ordinary stream; two or more in an order that
    # cannot be predicted is data in the send times (timing_coded; alert timing-channel).
    pa.field("timing_levels_ms", pa.list_(pa.float64())),
    pa.field("timing_coded", pa.bool_()),
    pa.field("markers", pa.int64()),
    pa.field("pairing", pa.string()),  # how the stream was tied to its call
    pa.field("pairing_confidence", pa.float64()),
]
STREAM_TYPE = pa.struct(STREAM_FIELDS)

# A stream known only from RTCP report blocks (RFC 3550 §6.4.1) about its SSRC: the
# sender is the far end of the RTCP flow from the reporter; ports are the RTCP flow's.
RTCP_ONLY_STREAM_TYPE = pa.struct(
    [
        pa.field("ssrc", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("sender_ip", pa.string()),
        pa.field("sender_port", pa.int32()),
        pa.field("reporter_ip", pa.string()),
        pa.field("reporter_port", pa.int32()),
        pa.field("first_report", pa.float64()),
        pa.field("last_report", pa.float64()),
        pa.field("rtcp_reports", pa.int64()),
        pa.field("rtcp_loss_pct", pa.float64()),
        pa.field("rtcp_cumulative_lost", pa.int64()),
        pa.field("rtcp_jitter_ts_units", pa.int64()),  # no clock without a payload type
        pa.field("rtcp_rtt_ms", pa.float64()),
    ]
)

CALL_SCHEMA = pa.schema(
    [
        pa.field("call_id", pa.string()),
        pa.field("capture", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("kind", pa.string()),  # "call" | "registration" | "app-call" | "media-only"
        pa.field("app", pa.string()),
        pa.field("caller", pa.string()),
        pa.field("callee", pa.string()),
        pa.field("request_uri", pa.string()),
        pa.field("path", pa.string()),  # app calls: "relay" | "direct" | "relay and direct"
        pa.field("start", pa.float64()),
        pa.field("answer", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("state", pa.string()),
        pa.field("final_code", pa.int32()),
        pa.field("redirected_to", pa.list_(pa.string())),
        pa.field("related_calls", pa.list_(pa.string())),
        pa.field("streams", pa.list_(STREAM_TYPE)),
        # Streams only the far end's RTCP tells of (reported on, no RTP in the capture).
        pa.field("rtcp_only_streams", pa.list_(RTCP_ONLY_STREAM_TYPE)),
        pa.field("signaling_flows", pa.list_(pa.int64())),
        pa.field("media_flows", pa.list_(pa.int64())),
        pa.field("messages", pa.string()),  # per-method counts, "INVITE:3 ACK:1 BYE:1"
        pa.field("dtmf", pa.list_(pa.string())),  # "5 at 1700000000.120 (RFC 4733)"
        pa.field("user_agents", pa.list_(pa.string())),
        # SIP: how its messages went, "udp", "tcp", "ws" (RFC 7118 SIP over WebSocket).
        pa.field("transports", pa.list_(pa.string())),
        pa.field("caller_ip", pa.string()),
        pa.field("callee_ip", pa.string()),
        pa.field("ended_by", pa.string()),
        pa.field("participants", pa.int32()),
        pa.field("caller_talk_pct", pa.float64()),
        pa.field("callee_talk_pct", pa.float64()),
        pa.field("double_talk_pct", pa.float64()),
        pa.field("silence_pct", pa.float64()),
        # registrations (kind "registration")
        pa.field("result", pa.string()),
        pa.field("challenges", pa.int32()),
        pa.field("credentials_rejected", pa.int32()),
        pa.field("auth_usernames", pa.list_(pa.string())),
        pa.field("realm", pa.string()),
        pa.field("evidence", pa.list_(pa.string())),
    ]
)

# Alert (DESIGN §3). ``data`` is kind-specific: JSON text in Arrow, CSV and Parquet, an
# object in JSONL (the field metadata tells the JSONL writer).
JSON_TEXT = {b"voipscope.json": b"1"}
ALERT_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.float64()),
        pa.field("last_ts", pa.float64()),
        pa.field("kind", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("src_ip", pa.string()),
        pa.field("dst_ip", pa.string()),
        pa.field("summary", pa.string()),
        pa.field("evidence", pa.list_(pa.string())),
        pa.field("evidence_dropped", pa.int64()),
        pa.field("count", pa.int64()),
        pa.field("data", pa.string(), metadata=JSON_TEXT),
    ]
)

# Streams flattened out of their calls (one row per stream, with its call): for tools
# that read nested Parquet lists poorly.
FLAT_STREAM_SCHEMA = pa.schema(
    [pa.field("call_id", pa.string()), pa.field("capture", pa.string()), *STREAM_FIELDS]
)

# Action (docs/inline.md): a verdict hook's drop or shape, the targets it covers and, for
# a capture, the packets and bytes of it the decision would have stopped.
TARGET_TYPE = pa.struct(
    [
        pa.field("scope", pa.string()),  # flow | to | from
        pa.field("proto", pa.int64()),
        pa.field("ip", pa.string()),
        pa.field("port", pa.int64()),
        pa.field("peer_ip", pa.string()),
        pa.field("peer_port", pa.int64()),
    ]
)
ACTION_SCHEMA = pa.schema(
    [
        pa.field("action_id", pa.int64()),
        pa.field("ts", pa.float64()),
        pa.field("action", pa.string()),
        pa.field("rate_kbit", pa.int64()),
        pa.field("ttl_s", pa.float64()),
        pa.field("reason", pa.string()),
        pa.field("event", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("flow_id", pa.int64()),
        pa.field("call_id", pa.string()),
        pa.field("record_id", pa.string()),
        pa.field("alert_kind", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("app", pa.string()),
        pa.field("follows", pa.int64()),
        pa.field("targets", pa.list_(TARGET_TYPE)),
        pa.field("targets_dropped", pa.int64()),
        pa.field("packets_after", pa.int64()),
        pa.field("bytes_after", pa.int64()),
        pa.field("applied", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("capture", pa.string()),
    ]
)
