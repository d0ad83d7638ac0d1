"""numba kernel: per-(flow, direction, SSRC) RTP statistics over one DecodedBatch.

Speculative by design (DESIGN §2): every UDP payload that looks like an RTP header is
tracked before any dissector has matched the flow, so the packets before the match
count too; the caller keeps the streams only of flows the arbiter judged RTP.

State is preallocated numpy, no Python object per packet:

- ``slot_row[slot]``: 1 + the flow row of the flow now in that flow-table slot (0: none).
  A flow row (``FR_*`` columns of ``frows``) holds the flow id, the RTCP, truncated and
  SSRC-overflow counters and up to ``2 * MAX_SSRCS`` stream rows. Slots are reused once a
  flow ends, possibly inside the batch being tracked: a packet whose flow id differs from
  its slot's flow row starts a new flow row, and the old one lives on until the caller
  collects it at expiry (``on_expire`` comes after the batch's hooks).
- ``si``/``sf``: stream rows, int64 (``S_*``) and float64 (``SF_*``) columns.

Pools are free-list stacks; when one is empty the kernel stops and returns where, the
caller grows the pool and calls again from there (as flows.kernels.update_flows does).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.activity import talk_spurts as TS
from voipscope.activity import timing as TM
from voipscope.activity import tones as TN
from voipscope.decode import status as S
from voipscope.dissect.stun_wire import (
    CHANNEL_FIRST_BYTE_MAX,
    CHANNEL_FIRST_BYTE_MIN,
    CHANNEL_HEADER_BYTES,
    STUN_ATTR_DATA,
    STUN_DATA_INDICATION,
    STUN_HEADER_BYTES,
    STUN_MAGIC_COOKIE,
    STUN_SEND_INDICATION,
)
from voipscope.row_pool import pop_row
from voipscope.wire import u16be, u32be

UDP = 17
# ``in_extra[i]`` bits: the payload is in ``extra`` (a datagram rebuilt from fragments or
# cut from a TCP stream), and, for a packet cut from TCP, bytes of its stream in front of
# it were never captured (quality.tcp_framing), so numbers it skips are missing from
# the capture.
IN_EXTRA = 1
AFTER_CAPTURE_HOLE = 2
RTP_VERSION_BITS = 0x80  # RFC 3550 §5.1: V=2 in the top two bits of the first octet
RTP_FIXED_HEADER_BYTES = 12  # RFC 3550 §5.1
RTP_EXTENSION_HEADER_BYTES = 4  # RFC 3550 §5.3.1
RTCP_MIN_BYTES = 8  # RFC 3550 §6.4: V/P/count, PT, length, SSRC
# RFC 5761 §4: with RTP and RTCP on one port, the second octet 200..223 (RTCP packet
# types, or RTP PT 72..95 with the marker bit, which RTP must avoid) is RTCP.
RTCP_SECOND_BYTE_FIRST = 200
RTCP_SECOND_BYTE_LAST = 223
# Media relayed by a TURN server is RTP with its header in the clear inside ChannelData
# (its first byte 0x40-0x4F, which no RTP/RTCP packet starts with: RFC 7983 §7; over UDP
# the padding to 4 bytes may be there or not, RFC 8656 §12.5) or, before a channel is
# bound, inside the DATA attribute of a Send indication (client to relay) or a Data
# indication (relay to client), RFC 8656 §11: STUN attributes are TLVs padded to 4
# bytes. The wire constants are dissect/stun_wire.py's.
SEQ_MOD = 1 << 16  # RFC 3550 A.1: RTP_SEQ_MOD
SEQ_HALF = 1 << 15
# A duplicate is told from a late packet by remembering which of the last SEEN_WINDOW
# extended sequence numbers arrived (a 64-bit mask, one bit each).
SEEN_WINDOW = 64
PT_CN = 13  # RFC 3551 §6 / RFC 3389 comfort noise
PT_CN_OLD = 19  # CN's pre-RFC 3389 number; tshark treats both as CN

# Streams tracked per (flow, direction); more SSRCs are counted, not tracked (DESIGN §4).
MAX_SSRCS = 4

# Flow row columns (int64)
FR_FLOW_ID = 0
FR_SLOT = 1
FR_RTCP = 2  # + direction: RTCP packets (RFC 5761 §4 second-octet test)
FR_TRUNCATED = 4  # + direction: version 2, but CSRC list or extension cut short
FR_OVERFLOW = 6  # + direction: packets of SSRCs beyond MAX_SSRCS
FR_STREAMS = 8  # + direction * MAX_SSRCS + k: 1 + stream row (0: empty)
FR_LEN = FR_STREAMS + 2 * MAX_SSRCS

# Stream row int64 columns
S_FLOW_ROW = 0
S_DIRECTION = 1
S_SSRC = 2
S_PACKETS = 3
S_FIRST_SEQ = 4  # as sent (16 bits)
S_LAST_SEQ = 5  # as sent, of the last packet to arrive
S_MIN_EXT = 6  # extended sequence numbers (RFC 3550 A.1: cycles << 16 | seq)
S_MAX_EXT = 7
S_SEEN = 8  # bit k: extended seq S_MAX_EXT - k arrived
S_DUPLICATES = 9
S_OUT_OF_ORDER = 10  # arrived after a higher sequence number (late, not a duplicate)
S_PT_FIRST = 11
S_PT_LAST = 12
S_PT_CHANGES = 13
S_MARKERS = 14
S_FIRST_NS = 15
S_LAST_NS = 16
S_TS_FIRST = 17  # RTP timestamp of the first packet (32 bits, as sent)
S_TS_LAST = 18  # extended (RFC 3550 §5.1 wraps it) timestamp of the last packet
S_MAX_DELTA_NS = 19  # the largest gap before a "regular" packet (see _account)
S_JITTER_PACKETS = 20  # regular packets with a known clock: the mean jitter's count
S_CLOCK_HZ = 21  # the last known clock rate seen (0: none yet)
S_UNCLOCKED = 22  # packets whose payload type has no known clock rate
S_REF_TS = 23  # extended timestamp of the last packet in timestamp order
S_REF_NS = 24  # and its arrival time: what the next packet's gap and transit are from
S_DTMF_TS = 25  # 1 + RTP timestamp of the last DTMF event reported (0: none)
S_DTMF_EVENTS = 26
S_GAP_MISSING = 27  # of the lost: sequence numbers missing across a capture-wide silence
# Dynamic payload type without a known clock (see CANDIDATE_CLOCKS_HZ):
S_DYN_PT = 28  # 1 + the payload type the candidate estimators follow (0: none)
S_DYN_JITTER_PACKETS = 29  # its regular packets: the candidates' mean jitter count
S_DYN_TICKS = 30  # RTP timestamp advance summed over those packets' steps
S_DYN_NS = 31  # and the arrival time they took: ticks per second is the clock's witness
S_TM_CLOCK_HZ = 32  # the clock the kept transits are taken against (0: none yet)
# Of a provisional clock: the timestamp advance per sequence number while every kept
# transit's packet had exactly that much per number since the first (-1: not so).
S_TM_STEP = 33
# The stream's transits are judged in windows of activity.timing.TIMING_PACKETS sequence
# numbers, so a message sent late in a long call is read too: the window the kept
# transits belong to, and (windows after the first) the transit, in microseconds, of
# its first kept packet, which later ones are kept relative to (clock drift over an hour
# would otherwise leave the 16-bit range).
S_TM_WINDOW = 34
S_TM_BASE_US = 35
# Loss runs (G.107 §7.5 BurstR needs the mean length of a run of lost packets): maximal
# runs of missing sequence numbers, kept exact as late packets fill holes within the
# SEEN_WINDOW; of them, the runs skipped across a capture-wide silence (not the network's).
S_LOSS_RUNS = 36
S_GAP_RUNS = 37
# The longest stretch without a packet of the stream (arrival order): its length and the
# arrival before it; and the longest of those stretches that were media outages
# (is_outage), with the sequence numbers the packet after it skipped.
S_LONGEST_GAP_NS = 38
S_LONGEST_GAP_START_NS = 39
S_LONGEST_OUTAGE_NS = 40
S_LONGEST_OUTAGE_START_NS = 41
# What a fixed de-jitter buffer would discard (the receiver plays each packet a fixed
# delay after the earliest it could have come; a later packet is too late to play, and
# G.107's Ppl counts it as lost). Transit = arrival - RTP time since the first packet
# (ns, from the payload type's clock); the reference is the least transit of this and
# the previous JB_WINDOW_NS of arrival, so the buffer follows a drifting clock and a
# lasting change of path delay as a real one resyncs. Packets judged (known clock,
# not duplicates), the two windows' least transits, and the discards per buffer size.
S_JB_JUDGED = 42
S_JB_WINDOW = 43
S_JB_MIN_NS = 44
S_JB_PREV_MIN_NS = 45
S_JB_LATE_SHORT = 46
S_JB_LATE_LONG = 47
# Media outages (is_outage): how many gaps were ones, their time in all, and the numbers
# the longest one skipped.
S_OUTAGES = 48
S_OUTAGE_NS = 49
S_LONGEST_OUTAGE_SKIPPED = 50
S_LEN = 51
NO_TRANSIT_BASE = -(1 << 62)

# A media outage: a gap of at least OUTAGE_MIN_NS across which the sender went on
# numbering packets (RFC 3550 §5.1: one sequence number per packet sent), at least one
# per OUTAGE_PACKET_INTERVAL_NS, and the capture saw other packets meanwhile: sent, never
# seen here. A second of consecutive audio gone is a dropout every listener hears; RFC
# 3551 §4.5 frames run to 30 ms and ptime rarely above 60 ms, so one number per 100 ms
# admits every packetisation in use while a talk pause (DTX, hold) that ended with one
# lost packet (one number skipped over seconds) stays out.
OUTAGE_MIN_NS = 1_000_000_000
OUTAGE_PACKET_INTERVAL_NS = 100_000_000

# The two buffer sizes: VoIPmonitor's fixed-buffer MOS figures use the same (F1, F2); a
# short buffer for low-delay paths, a long one what most phones can grow to.
JB_SHORT_NS = 50_000_000
JB_LONG_NS = 200_000_000
JB_WINDOW_NS = 10_000_000_000
# A packet this far behind the reference is no late packet but a new timestamp base (a
# sender restarting its RTP clock after a re-INVITE, another source behind an SBC) or the
# reference's own outlier: the buffers start over from it, as a receiver's would.
JB_RESYNC_NS = 1_000_000_000

# Stream row float64 columns (milliseconds)
SF_JITTER = 0  # RFC 3550 A.8 estimator J, kept in ms (= J in ticks / clock * 1000)
SF_MAX_JITTER = 1
# Wireshark's running mean over regular packets: m = (m * (N - 1) + J) / N with N the
# packets before this one (all of them, regular or not); equal to the plain mean of J
# over packets 2.. when every packet is regular.
SF_MEAN_JITTER = 2
# A dynamic payload type (96-127, RFC 3551 §3) has no clock until the call's SDP
# a=rtpmap names it, and the calls stage learns that only after the flow ended, while
# A.8 cannot be redone afterwards (|D| is not linear in the clock). So its packets run the
# estimator once per clock rate real codecs of dynamic types use, and the calls stage
# keeps the one the rtpmap says (quality.clock_candidates):
#    8000  AMR (RFC 4867 §8.1), iLBC (RFC 3952 §5), G.726 (RFC 3551 §4.5.4), speex NB
#          (RFC 5574 §6), GSM-EFR (RFC 3551 §4.5.9)
#   12000  SILK MB (draft-spittka-payload-rtp-silk §4)
#   16000  AMR-WB (RFC 4867 §8.3), G.722.1 (RFC 5577 §6), G.729.1 (RFC 4749 §5),
#          speex WB (RFC 5574), EVS (3GPP TS 26.445 A.3), SILK WB
#   24000  SILK SWB
#   32000  G.722.1 Annex C (RFC 5577 §6), speex UWB (RFC 5574)
#   44100  L16 / AAC at CD rate (RFC 3551 §4.5.11, RFC 3640)
#   48000  Opus, always (RFC 7587 §4.1), L16 / AAC at 48 kHz
#   90000  every video format: H.263 (RFC 4629 §8), H.264 (RFC 6184 §8.2.1), VP8
#          (RFC 7741 §6.1), H.265 (RFC 7798 §7.1), VP9 (RFC 9628), AV1 (RFC 3551 §5)
CANDIDATE_CLOCKS_HZ = (8000, 12000, 16000, 24000, 32000, 44100, 48000, 90000)
CANDIDATES = len(CANDIDATE_CLOCKS_HZ)
# The transits of such a stream (activity.timing) are taken against a provisional clock
# (_transit_clock), re-picked up to this sequence number when the timestamps' advance per
# second comes this near another candidate: ~1 s at 50 packets/s measures the rate to
# well under the 8.8 % between the nearest candidates (44100, 48000).
TRANSIT_REPICK_PACKETS = 64
TRANSIT_REPICK_TOLERANCE = 0.02
# Per candidate k, at SF_CANDIDATES + k * SF_PER_CANDIDATE: J, mean J, max J (ms), kept
# by the rules of the three columns above.
SF_CANDIDATES = 3
SF_PER_CANDIDATE = 3
SF_C_JITTER = 0
SF_C_MEAN_JITTER = 1
SF_C_MAX_JITTER = 2
SF_LEN = SF_CANDIDATES + CANDIDATES * SF_PER_CANDIDATE

# meta vector
M_FROWS_TOP = 0  # free flow rows on the stack
M_FROWS_HIGH = 1  # flow rows ever used
M_SROWS_TOP = 2
M_SROWS_HIGH = 3
M_NEW = 4  # flow rows allocated since the caller last read ``new_rows``
M_EVENTS = 5  # events in ``ev`` not yet drained by the caller
M_LAST_NS = 6  # arrival of the last decoded packet of any kind
M_SILENCE_START = 7  # the last capture-wide silence: nothing at all was captured
M_SILENCE_END = 8
M_SILENCES = 9  # how many there were
M_TM_WINDOWS = 10  # complete transit windows in ``tmw`` not yet drained by the caller
M_LEN = 11
# Nothing at all captured for this long, on a link that carried media, is the capture
# missing packets (a dropping tap, a rotated file, a paused capture), not the network:
# a network fault loses some flows' packets, not every packet of every flow.
CAPTURE_SILENCE_NS = 500_000_000

# Event columns (int64): a finished talk spurt (row, start ns, end ns), a DTMF event
# (row, arrival ns, event code), a finished run of one tone (row, start and end extended
# RTP timestamps, centi-Hz, frames, tone share per mille: activity.tones) or an in-band
# DTMF key press (row, arrival ns, event code).
EV_KIND = 0
EV_ROW = 1
EV_A = 2
EV_B = 3
EV_C = 4
EV_D = 5
EV_E = 6
EV_LEN = 7
EV_SPURT = 0
EV_DTMF = 1
EV_TONE_RUN = 2
EV_INBAND_DTMF = 3
# RTCP events carry the *flow* row in EV_ROW (no stream row: RTCP is not RTP).
# EV_RTCP_SR: A arrival ns, B sender SSRC, C NTP middle 32 bits | direction << 32.
# EV_RTCP_BLOCK: A arrival ns, B reported SSRC, C cumulative lost (24 bits, as sent)
#   | direction << 24 | DLSR << 25, D jitter (timestamp units) | fraction lost << 32,
#   E LSR.
EV_RTCP_SR = 4
EV_RTCP_BLOCK = 5
# A stream's transit window is complete: A its window number, B its index in ``tmw``.
EV_TIMING_WINDOW = 6
# a complete transit window, a talk spurt, and a tone run or an in-band key press
MAX_EVENTS_PER_PACKET = 3
# RTCP (RFC 3550 §6.4): sender reports and report blocks handed out per datagram. A
# compound packet may carry 31 blocks per report; the first few are the parties'.
MAX_RTCP_EVENTS = 6
RTCP_SR = 200
RTCP_RR = 201
RTCP_SR_BYTES = 28  # header 4, SSRC 4, NTP 8, RTP ts 4, packet and octet counts 8
RTCP_RR_BYTES = 8  # header 4, SSRC 4
RTCP_BLOCK_BYTES = 24  # §6.4.1: SSRC, fraction, cumulative lost, ext. seq, jitter, LSR, DLSR
DTMF_EVENT_BYTES = 4  # RFC 4733 §2.3: event, E/R/volume, duration
DTMF_LAST_EVENT = 15  # RFC 4733 §3.2: 0-9, *, #, A-D
DYNAMIC_PT_FIRST = 96  # RFC 3551 §3: 96-127 are dynamic (telephone-event always is, §6)

# Stop reasons
DONE = 0
FLOW_POOL_FULL = 1
STREAM_POOL_FULL = 2
EVENTS_FULL = 3


# _parse verdicts
NOT_RTP = 0
IS_RTP = 1
IS_RTCP = 2
TRUNCATED = 3  # version 2 and not RTCP, but the CSRC list or extension runs past the end


@njit(cache=True, nogil=True, inline="always")
def _unwrap_channel(data, p, length):
    """(offset, length) of an RTP or RTCP packet relayed inside TURN ChannelData at
    ``p``; ``(p, length)`` unchanged for anything else."""
    if p < 0 or p + length > data.shape[0] or length < CHANNEL_HEADER_BYTES + RTCP_MIN_BYTES:
        return p, length
    if data[p] == 0x00 and length >= STUN_HEADER_BYTES + 4 + RTCP_MIN_BYTES:
        return _unwrap_indication(data, p, length)
    if not CHANNEL_FIRST_BYTE_MIN <= data[p] <= CHANNEL_FIRST_BYTE_MAX:
        return p, length
    inner = np.int64(u16be(data, p + 2))
    if inner < RTCP_MIN_BYTES or inner > length - CHANNEL_HEADER_BYTES:
        return p, length
    if (data[p + CHANNEL_HEADER_BYTES] & 0xC0) != RTP_VERSION_BITS:
        return p, length
    return p + CHANNEL_HEADER_BYTES, inner


@njit(cache=True, nogil=True)
def _unwrap_indication(data, p, length):
    """The RTP or RTCP packet in the DATA attribute of a TURN Send or Data indication
    at ``p`` (the caller checked ``data[p:p + length]`` lies in ``data``)."""
    kind = u16be(data, p)
    if kind != STUN_SEND_INDICATION and kind != STUN_DATA_INDICATION:
        return p, length
    if u32be(data, p + 4) != STUN_MAGIC_COOKIE:
        return p, length
    end = p + min(length, STUN_HEADER_BYTES + np.int64(u16be(data, p + 2)))
    at = p + STUN_HEADER_BYTES
    while at + 4 <= end:
        attr = u16be(data, at)
        size = np.int64(u16be(data, at + 2))
        if at + 4 + size > end:
            break
        if attr == STUN_ATTR_DATA:
            if size >= RTCP_MIN_BYTES and (data[at + 4] & 0xC0) == RTP_VERSION_BITS:
                return at + 4, size
            break
        at += 4 + size + (-size & 3)
    return p, length


@njit(cache=True, nogil=True, inline="always")
def _parse(data, p, length):
    """(verdict, sequence, timestamp, SSRC, second octet, header bytes) of the payload
    at ``p``."""
    if p < 0 or p + length > data.shape[0]:
        return NOT_RTP, 0, 0, 0, 0, 0  # not the caller's promise; never read outside it
    b0 = np.int64(data[p])
    if (b0 & 0xC0) != RTP_VERSION_BITS:
        return NOT_RTP, 0, 0, 0, 0, 0
    b1 = np.int64(data[p + 1])
    if RTCP_SECOND_BYTE_FIRST <= b1 <= RTCP_SECOND_BYTE_LAST:
        return IS_RTCP, 0, 0, 0, b1, 0
    if length < RTP_FIXED_HEADER_BYTES:
        return NOT_RTP, 0, 0, 0, b1, 0
    # RFC 3550 §5.1/§5.3.1: the CSRC list and the extension must fit the datagram.
    header = RTP_FIXED_HEADER_BYTES + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if header + RTP_EXTENSION_HEADER_BYTES > length:
            return TRUNCATED, 0, 0, 0, b1, 0
        header += RTP_EXTENSION_HEADER_BYTES + 4 * u16be(data, p + header + 2)
    if header > length:
        return TRUNCATED, 0, 0, 0, b1, 0
    return IS_RTP, u16be(data, p + 2), u32be(data, p + 4), u32be(data, p + 8), b1, header


@njit(cache=True, nogil=True)
def track_rtp(
    buf, extra, in_extra, l4_off, l4_len, status, proto, ts_ns,
    slot, flow_id, direction, start,
    slot_row, frows, ffree, si, sf, sfree, meta, new_rows, clock_hz, va, ev,
):  # fmt: skip
    """Account packets [start, n) without tone analysis (see track_media)."""
    return track_media(
        buf, extra, in_extra, l4_off, l4_len, status, proto, ts_ns,
        slot, flow_id, direction, start,
        slot_row, frows, ffree, si, sf, sfree, meta, new_rows, clock_hz, va, ev,
        np.zeros((1, TN.T_LEN)), np.zeros((1, TN.TC_LEN)), np.zeros(1), False,
        np.zeros((1, 1), np.int16), np.zeros((1, 1), np.int16),
    )  # fmt: skip


@njit(cache=True, nogil=True)
def track_media(
    buf, extra, in_extra, l4_off, l4_len, status, proto, ts_ns,
    slot, flow_id, direction, start,
    slot_row, frows, ffree, si, sf, sfree, meta, new_rows, clock_hz, va, ev,
    tn, codecs, scratch, tones_on, tm, tmw,
):  # fmt: skip
    """Account packets [start, n). Returns (stopped_at, DONE | *_POOL_FULL | EVENTS_FULL).

    ``va``: talk-spurt state per stream row (activity.talk_spurts V_* columns); ``ev``:
    events out (EV_* columns), ``meta[M_EVENTS]`` of them, drained by the caller.
    With ``tones_on``: ``tn`` tone state per stream row (activity.tones T_* columns),
    ``codecs`` its codec table per payload type, ``scratch`` decoded samples of one frame,
    ``tm`` the transits of the current window of sequence numbers per stream row
    (activity.timing), and ``tmw`` complete windows out, ``meta[M_TM_WINDOWS]`` of them,
    each named by an EV_TIMING_WINDOW event (row, window number, index in ``tmw``).

    ``in_extra[i]`` (IN_EXTRA): packet i's payload is at ``l4_off[i]`` in ``extra`` (a
    datagram rebuilt from fragments or cut from TCP), not in ``buf``; AFTER_CAPTURE_HOLE:
    the capture missed bytes of its TCP stream before it. ``clock_hz[pt]``: 0 when
    unknown.
    """
    n = status.shape[0]
    f_cap = frows.shape[0]
    s_cap = si.shape[0]
    ev_cap = ev.shape[0]
    tmw_cap = tmw.shape[0]
    for i in range(start, n):
        if meta[M_EVENTS] + MAX_EVENTS_PER_PACKET > ev_cap or meta[M_TM_WINDOWS] >= tmw_cap:
            return i, EVENTS_FULL
        if status[i] == S.OK:
            t = ts_ns[i]
            if meta[M_LAST_NS] > 0 and t - meta[M_LAST_NS] >= CAPTURE_SILENCE_NS:
                meta[M_SILENCE_START] = meta[M_LAST_NS]
                meta[M_SILENCE_END] = t
                meta[M_SILENCES] += 1
            if t > meta[M_LAST_NS]:
                meta[M_LAST_NS] = t
        if status[i] != S.OK or proto[i] != UDP or not 0 <= slot[i] < slot_row.shape[0]:
            continue
        length = np.int64(l4_len[i])
        if length < RTCP_MIN_BYTES:
            continue
        # Two calls, not one array variable: the capture window may be read-only and
        # numba will not unify a read-only array with a writable one. ``at``/``length``:
        # the RTP or RTCP packet, inside TURN ChannelData where a relay carries it.
        if in_extra[i]:
            at, length = _unwrap_channel(extra, l4_off[i], length)
            kind, seq, ts, ssrc, b1, header = _parse(extra, at, length)
        else:
            at, length = _unwrap_channel(buf, l4_off[i], length)
            kind, seq, ts, ssrc, b1, header = _parse(buf, at, length)
        if kind == NOT_RTP:
            continue
        # The flow row of this packet's flow (a new one when the slot changed hands).
        s = slot[i]
        fid = flow_id[i]
        r = slot_row[s] - 1
        if r < 0 or frows[r, FR_FLOW_ID] != fid:
            r = pop_row(ffree, meta, M_FROWS_TOP, M_FROWS_HIGH, f_cap)
            if r < 0:
                return i, FLOW_POOL_FULL
            frows[r, :] = 0
            frows[r, FR_FLOW_ID] = fid
            frows[r, FR_SLOT] = s
            slot_row[s] = r + 1
            new_rows[meta[M_NEW]] = r
            meta[M_NEW] += 1
        d = np.int64(direction[i])
        if kind == IS_RTCP:
            if meta[M_EVENTS] + MAX_RTCP_EVENTS > ev_cap:
                return i, EVENTS_FULL  # before counting: the packet is read again
            frows[r, FR_RTCP + d] += 1
            if in_extra[i]:
                _rtcp(extra, at, length, r, d, ts_ns[i], ev, meta)
            else:
                _rtcp(buf, at, length, r, d, ts_ns[i], ev, meta)
            continue
        if kind == TRUNCATED:
            frows[r, FR_TRUNCATED + d] += 1
            continue
        # Find the stream of this SSRC in this direction, or a free place for it.
        base = FR_STREAMS + d * MAX_SSRCS
        row = -1
        empty = -1
        for k in range(MAX_SSRCS):
            ref = frows[r, base + k]
            if ref == 0:
                if empty < 0:
                    empty = k
            elif si[ref - 1, S_SSRC] == ssrc:
                row = ref - 1
                break
        if row < 0:
            if empty < 0:
                frows[r, FR_OVERFLOW + d] += 1
                continue
            row = pop_row(sfree, meta, M_SROWS_TOP, M_SROWS_HIGH, s_cap)
            if row < 0:
                return i, STREAM_POOL_FULL
            frows[r, base + empty] = row + 1
            si[row, :] = 0
            sf[row, :] = 0.0
            si[row, S_FLOW_ROW] = r
            si[row, S_DIRECTION] = d
            si[row, S_SSRC] = ssrc
            TS.reset_row(va, row)
            if tones_on:
                TN.reset_row(tn, row)
                TM.reset_row(tm, row)
        pt = b1 & 0x7F
        marker = b1 >> 7
        previous_ns = si[row, S_LAST_NS]
        previous_top = si[row, S_MAX_EXT]
        seen_before = si[row, S_PACKETS] > 0
        duplicates_before = si[row, S_DUPLICATES]
        _account(si, sf, row, seq, ts, pt, marker, ts_ns[i], clock_hz)
        jump = si[row, S_MAX_EXT] - previous_top
        if si[row, S_DUPLICATES] == duplicates_before and clock_hz[pt] > 0:
            _judge_playout(si, row, ts_ns[i], clock_hz[pt])
        in_capture_gap = seen_before and (
            (previous_ns <= meta[M_SILENCE_START] and ts_ns[i] >= meta[M_SILENCE_END] > 0)
            or (in_extra[i] & AFTER_CAPTURE_HOLE) != 0
        )
        if in_capture_gap and jump > 1:
            # The numbers skipped fall in a stretch where the capture saw nothing at all.
            si[row, S_GAP_MISSING] += jump - 1
            si[row, S_GAP_RUNS] += 1
        gap = ts_ns[i] - previous_ns
        if seen_before and gap > si[row, S_LONGEST_GAP_NS]:
            si[row, S_LONGEST_GAP_NS] = gap
            si[row, S_LONGEST_GAP_START_NS] = previous_ns
        skipped = jump - 1 if jump > 1 else 0
        if seen_before and is_outage(gap, skipped, in_capture_gap):
            si[row, S_OUTAGES] += 1
            si[row, S_OUTAGE_NS] += gap
            if gap > si[row, S_LONGEST_OUTAGE_NS]:
                si[row, S_LONGEST_OUTAGE_NS] = gap
                si[row, S_LONGEST_OUTAGE_START_NS] = previous_ns
                si[row, S_LONGEST_OUTAGE_SKIPPED] = skipped
        # -- who talks when, and DTMF (RFC 4733) events
        p = at + header
        payload = length - header
        if payload == DTMF_EVENT_BYTES and pt >= DYNAMIC_PT_FIRST:
            if in_extra[i]:
                event, flags = np.int64(extra[p]), np.int64(extra[p + 1])
            else:
                event, flags = np.int64(buf[p]), np.int64(buf[p + 1])
            # RFC 4733 §2.3: event 0-15 are DTMF digits; the R bit is zero. One event is
            # several packets with the same timestamp: report it once, at its first.
            new_event = ts + 1 != si[row, S_DTMF_TS]
            if event <= DTMF_LAST_EVENT and (flags & 0x40) == 0 and new_event:
                si[row, S_DTMF_TS] = ts + 1
                si[row, S_DTMF_EVENTS] += 1
                k = meta[M_EVENTS]
                ev[k, EV_KIND] = EV_DTMF
                ev[k, EV_ROW] = row
                ev[k, EV_A] = ts_ns[i]
                ev[k, EV_B] = event
                meta[M_EVENTS] += 1
            continue  # a DTMF event is neither speech nor silence of the stream
        # -- transit against the stream's own clock (activity.timing): packets in
        # sequence and timestamp order only (a late one's place is left empty)
        if (
            tones_on
            and si[row, S_REF_NS] == ts_ns[i]
            and si[row, S_REF_TS] == si[row, S_TS_LAST]
            and si[row, S_LAST_SEQ] == (si[row, S_MAX_EXT] & (SEQ_MOD - 1))
        ):
            position = si[row, S_MAX_EXT] - si[row, S_FIRST_SEQ]
            window = position // TM.TIMING_PACKETS
            if window > si[row, S_TM_WINDOW]:
                # The window is complete: handed out to be judged when it kept enough.
                if TM.kept(tm, row) >= TM.MIN_PACKETS:
                    w = meta[M_TM_WINDOWS]
                    tmw[w, :] = tm[row, :]
                    meta[M_TM_WINDOWS] += 1
                    k = meta[M_EVENTS]
                    ev[k, EV_KIND] = EV_TIMING_WINDOW
                    ev[k, EV_ROW] = row
                    ev[k, EV_A] = si[row, S_TM_WINDOW]
                    ev[k, EV_B] = w
                    meta[M_EVENTS] += 1
                TM.reset_row(tm, row)
                si[row, S_TM_WINDOW] = window
                si[row, S_TM_BASE_US] = NO_TRANSIT_BASE
            clock = clock_hz[pt]
            if clock > 0:
                si[row, S_TM_CLOCK_HZ] = clock
            else:
                clock = _transit_clock(si, tm, row, pt, position)
            if clock > 0:
                transit_ms = (ts_ns[i] - si[row, S_FIRST_NS]) / 1e6 - (
                    si[row, S_TS_LAST] - si[row, S_TS_FIRST]
                ) * 1000.0 / clock
                if window > 0:
                    if si[row, S_TM_BASE_US] == NO_TRANSIT_BASE:
                        si[row, S_TM_BASE_US] = round(transit_ms * 1000.0)
                    transit_ms -= si[row, S_TM_BASE_US] / 1000.0
                TM.account(tm, row, position - window * TM.TIMING_PACKETS, transit_ms)
        if in_extra[i]:
            voice = TS.is_voice(va, row, extra, p, payload, pt, ts_ns[i], ts, scratch)
        else:
            voice = TS.is_voice(va, row, buf, p, payload, pt, ts_ns[i], ts, scratch)
        k = meta[M_EVENTS]
        ended = TS.account_packet(
            va, row, ts_ns[i], voice, marker == 1, ev[:, EV_ROW], ev[:, EV_A], ev[:, EV_B], k
        )
        if ended > k:
            ev[k, EV_KIND] = EV_SPURT
            meta[M_EVENTS] += 1
        # -- tones: dominant frequency and tone share of the frame, runs of one tone
        if tones_on and codecs[pt, TN.TC_CODEC] != TN.CODEC_NONE:
            if in_extra[i]:
                got, span = TN.frame_samples(extra, p, payload, codecs, pt, scratch)
            else:
                got, span = TN.frame_samples(buf, p, payload, codecs, pt, scratch)
            if got >= TN.MIN_FRAME_SAMPLES:
                rate = codecs[pt, TN.TC_RATE_HZ]
                power, hz, share, flatness, key = TN.analyse_frame(scratch, got, rate)
                what, a, b, c, e, f = TN.account_frame(
                    tn, row, si[row, S_TS_LAST], span, power, hz, share, flatness, key,
                    codecs[pt, TN.TC_CLOCK_HZ], rate,
                )  # fmt: skip
                if what != TN.EMIT_NONE:
                    k = meta[M_EVENTS]
                    ev[k, EV_ROW] = row
                    if what == TN.EMIT_RUN:
                        ev[k, EV_KIND] = EV_TONE_RUN
                        ev[k, EV_A], ev[k, EV_B], ev[k, EV_C] = a, b, c
                        ev[k, EV_D], ev[k, EV_E] = e, f
                    else:
                        ev[k, EV_KIND] = EV_INBAND_DTMF
                        ev[k, EV_A], ev[k, EV_B] = ts_ns[i], a
                    meta[M_EVENTS] += 1
    return n, DONE


@njit(cache=True, nogil=True, inline="always")
def _account(si, sf, row, seq, ts, pt, marker, t_ns, clock_hz):
    """One RTP packet into its stream: sequence (RFC 3550 A.1, A.3), jitter (A.8)."""
    clock = clock_hz[pt]
    si[row, S_MARKERS] += marker
    if si[row, S_PACKETS] == 0:
        si[row, S_PACKETS] = 1
        si[row, S_FIRST_SEQ] = seq
        si[row, S_LAST_SEQ] = seq
        si[row, S_MIN_EXT] = seq
        si[row, S_MAX_EXT] = seq
        si[row, S_SEEN] = 1
        si[row, S_PT_FIRST] = pt
        si[row, S_PT_LAST] = pt
        si[row, S_FIRST_NS] = t_ns
        si[row, S_LAST_NS] = t_ns
        si[row, S_TS_FIRST] = ts
        si[row, S_TS_LAST] = ts
        si[row, S_REF_TS] = ts
        si[row, S_REF_NS] = t_ns
        if clock > 0:
            si[row, S_CLOCK_HZ] = clock
        else:
            si[row, S_UNCLOCKED] = 1
            if pt >= DYNAMIC_PT_FIRST:
                si[row, S_DYN_PT] = pt + 1
        return
    si[row, S_PACKETS] += 1

    # -- sequence: extend the 16-bit number to the one nearest the highest so far (A.1)
    top = si[row, S_MAX_EXT]
    step = (seq - top) & (SEQ_MOD - 1)
    if step >= SEQ_HALF:
        step -= SEQ_MOD  # behind the highest: late or duplicate
    ext = top + step
    if step > 0:
        seen = si[row, S_SEEN]
        si[row, S_SEEN] = ((seen << step) | 1) if step < SEEN_WINDOW else 1
        si[row, S_MAX_EXT] = ext
        if step > 1:
            si[row, S_LOSS_RUNS] += 1  # numbers top+1 .. ext-1 missing: a new run
    else:
        back = -step
        bit = np.int64(1) << back if back < SEEN_WINDOW else np.int64(0)
        if back < SEEN_WINDOW and (si[row, S_SEEN] & bit) != 0:
            si[row, S_DUPLICATES] += 1
        else:
            si[row, S_OUT_OF_ORDER] += 1
            if ext < si[row, S_MIN_EXT]:
                if si[row, S_MIN_EXT] - ext > 1:
                    si[row, S_LOSS_RUNS] += 1  # before the first number: a run opens
            elif back < SEEN_WINDOW:
                si[row, S_LOSS_RUNS] += _run_change(si[row, S_SEEN], back, ext, si[row, S_MIN_EXT])
            si[row, S_SEEN] |= bit
    if ext < si[row, S_MIN_EXT]:
        si[row, S_MIN_EXT] = ext
    si[row, S_LAST_SEQ] = seq

    # -- payload type and the packet's standing, as Wireshark's RTP stream analysis
    # judges it: marker (talk-spurt start), comfort noise and timestamps going
    # backwards make irregular gaps that say nothing about the network.
    prev_pt = si[row, S_PT_LAST]
    if pt != prev_pt:
        si[row, S_PT_CHANGES] += 1
    si[row, S_PT_LAST] = pt
    # RTP timestamps wrap (RFC 3550 §5.1): extend to the value nearest the last one.
    ts_step = (ts - si[row, S_TS_LAST]) & 0xFFFFFFFF
    if ts_step >= 0x80000000:
        ts_step -= 0x100000000
    ext_ts = si[row, S_TS_LAST] + ts_step
    si[row, S_TS_LAST] = ext_ts
    si[row, S_LAST_NS] = t_ns
    # Gaps and transit times are taken from the last packet in timestamp order, as
    # Wireshark's RTP analysis does: a packet from the past (reordered, a DTMF event's
    # fixed timestamp, a new timestamp base) moves neither reference.
    in_order = ext_ts >= si[row, S_REF_TS]
    regular = (
        in_order
        and marker == 0
        and pt != PT_CN
        and pt != PT_CN_OLD
        and prev_pt != PT_CN
        and prev_pt != PT_CN_OLD
    )
    delta_ns = t_ns - si[row, S_REF_NS]
    if regular and delta_ns > si[row, S_MAX_DELTA_NS]:
        si[row, S_MAX_DELTA_NS] = delta_ns
    if clock <= 0:
        si[row, S_UNCLOCKED] += 1
        if pt >= DYNAMIC_PT_FIRST:
            if si[row, S_DYN_PT] == 0:
                si[row, S_DYN_PT] = pt + 1
            # One dynamic type per stream: a telephone-event (RFC 4733, also dynamic) in
            # an Opus stream has another clock and timestamps that do not advance.
            if in_order and si[row, S_DYN_PT] == pt + 1:
                _candidates(si, sf, row, delta_ns, ext_ts - si[row, S_REF_TS], regular)
    elif in_order:
        # Interarrival jitter (RFC 3550 §6.4.1, A.8): D = (Rj - Ri) - (Sj - Si) and
        # J += (|D| - J) / 16, here in ms; in timestamp units it is J * clock / 1000.
        si[row, S_CLOCK_HZ] = clock
        d_ms = delta_ns / 1e6 - (ext_ts - si[row, S_REF_TS]) * 1000.0 / clock
        jitter = sf[row, SF_JITTER] + (abs(d_ms) - sf[row, SF_JITTER]) / 16.0
        sf[row, SF_JITTER] = jitter
        if regular:
            si[row, S_JITTER_PACKETS] += 1
            before = si[row, S_PACKETS] - 1
            sf[row, SF_MEAN_JITTER] = (sf[row, SF_MEAN_JITTER] * (before - 1) + jitter) / before
            if jitter > sf[row, SF_MAX_JITTER]:
                sf[row, SF_MAX_JITTER] = jitter
    if in_order:
        si[row, S_REF_TS] = ext_ts
        si[row, S_REF_NS] = t_ns


@njit(cache=True, nogil=True, inline="always")
def is_outage(gap_ns, skipped, in_capture_gap):
    """Whether a gap of a stream, after which ``skipped`` sequence numbers were missing,
    was a media outage (OUTAGE_*)."""
    if in_capture_gap or gap_ns < OUTAGE_MIN_NS:
        return False
    return skipped * OUTAGE_PACKET_INTERVAL_NS >= gap_ns


@njit(cache=True, nogil=True, inline="always")
def _judge_playout(si, row, t_ns, clock):
    """One packet (its extended RTP timestamp already in S_TS_LAST) against the fixed
    de-jitter buffers of S_JB_*: late when its transit exceeds the reference by more
    than the buffer holds."""
    media_ns = (si[row, S_TS_LAST] - si[row, S_TS_FIRST]) * 1_000_000_000 // clock
    transit = t_ns - media_ns
    window = (t_ns - si[row, S_FIRST_NS]) // JB_WINDOW_NS
    if si[row, S_JB_JUDGED] == 0:
        si[row, S_JB_WINDOW] = window
        si[row, S_JB_MIN_NS] = transit
        si[row, S_JB_PREV_MIN_NS] = transit
    elif window > si[row, S_JB_WINDOW]:
        # A new window: the one before becomes the previous (after a silence longer than
        # a window, the last one that had packets).
        si[row, S_JB_PREV_MIN_NS] = si[row, S_JB_MIN_NS]
        si[row, S_JB_MIN_NS] = transit
        si[row, S_JB_WINDOW] = window
    reference = min(si[row, S_JB_MIN_NS], si[row, S_JB_PREV_MIN_NS])
    late = transit - reference
    if late > JB_RESYNC_NS:
        si[row, S_JB_MIN_NS] = transit
        si[row, S_JB_PREV_MIN_NS] = transit
        late = 0
    if late > JB_SHORT_NS:
        si[row, S_JB_LATE_SHORT] += 1
    if late > JB_LONG_NS:
        si[row, S_JB_LATE_LONG] += 1
    if transit < si[row, S_JB_MIN_NS]:
        si[row, S_JB_MIN_NS] = transit
    si[row, S_JB_JUDGED] += 1


@njit(cache=True, nogil=True, inline="always")
def _run_change(seen, back, ext, min_ext):
    """How a late packet changes the count of runs of missing numbers: it fills a hole
    at ``back`` below the highest number. Alone in its hole (both neighbours arrived) a
    run ends (-1); inside a longer run with both neighbours missing it splits it (+1);
    at a run's edge it only shortens it (0). A neighbour before the stream's first
    number, or older than the window remembers, counts as arrived: it was never a hole
    this stream counted (or cannot be told any more)."""
    newer = (seen >> (back - 1)) & 1
    older = 1
    if ext - 1 >= min_ext and back + 1 < SEEN_WINDOW:
        older = (seen >> (back + 1)) & 1
    if newer == 1 and older == 1:
        return -1
    if newer == 0 and older == 0:
        return 1
    return 0


@njit(cache=True, nogil=True, inline="always")
def _candidates(si, sf, row, delta_ns, ticks, regular):
    """One in-order packet of the stream's dynamic payload type into the A.8 estimator
    of every candidate clock: the same arithmetic as the known-clock path of _account."""
    before = si[row, S_PACKETS] - 1
    if regular:
        si[row, S_DYN_JITTER_PACKETS] += 1
        si[row, S_DYN_TICKS] += ticks
        si[row, S_DYN_NS] += delta_ns
    for k in range(CANDIDATES):
        c = SF_CANDIDATES + k * SF_PER_CANDIDATE
        d_ms = delta_ns / 1e6 - ticks * 1000.0 / CANDIDATE_CLOCKS_HZ[k]
        jitter = sf[row, c + SF_C_JITTER] + (abs(d_ms) - sf[row, c + SF_C_JITTER]) / 16.0
        sf[row, c + SF_C_JITTER] = jitter
        if regular:
            mean = sf[row, c + SF_C_MEAN_JITTER]
            sf[row, c + SF_C_MEAN_JITTER] = (mean * (before - 1) + jitter) / before
            if jitter > sf[row, c + SF_C_MAX_JITTER]:
                sf[row, c + SF_C_MAX_JITTER] = jitter


@njit(cache=True, nogil=True, inline="always")
def _transit_clock(si, tm, row, pt, position):
    """The clock the transits of a dynamic payload type's stream are taken against, while
    no rtpmap has named it (0: none yet; see TRANSIT_REPICK_*).

    Provisional: the candidate nearest (in ratio) to the stream's timestamp advance per
    second of arrival so far. The first pick comes at the first regular step, one gap
    that jitter (or the very delays a timing channel adds) may stretch towards a
    neighbour, so until the stream's TRANSIT_REPICK_PACKETS-th sequence number the
    longer measure may replace it when it lies within TRANSIT_REPICK_TOLERANCE of another
    candidate. The transits kept so far are then moved to the new clock where the
    timestamps advanced by one fixed step per sequence number (the transit's timestamp
    term is then position x step), and dropped otherwise. The call's SDP, or the clock
    the whole stream proves, has the last word (calls.assembler drops a judgement against
    another clock)."""
    if si[row, S_DYN_PT] != pt + 1:
        return 0  # a second dynamic type in the stream (telephone-event beside Opus)
    ticks = si[row, S_TS_LAST] - si[row, S_TS_FIRST]
    if si[row, S_DYN_NS] > 0 and si[row, S_DYN_TICKS] > 0:
        rate = si[row, S_DYN_TICKS] * 1e9 / si[row, S_DYN_NS]
        best = CANDIDATE_CLOCKS_HZ[0]
        for c in CANDIDATE_CLOCKS_HZ:
            if abs(np.log(rate / c)) < abs(np.log(rate / best)):
                best = c
        current = si[row, S_TM_CLOCK_HZ]
        if current == 0:
            si[row, S_TM_CLOCK_HZ] = best
            si[row, S_TM_STEP] = ticks // position if position > 0 else -1
            TM.account(tm, row, 0, 0.0)  # the first packet: every transit's origin
        elif (
            best != current
            and position < TRANSIT_REPICK_PACKETS
            and abs(rate / best - 1.0) <= TRANSIT_REPICK_TOLERANCE
        ):
            if si[row, S_TM_STEP] > 0:
                TM.rescale(tm, row, si[row, S_TM_STEP], current, best)
            else:
                TM.reset_row(tm, row)
                TM.account(tm, row, 0, 0.0)
            si[row, S_TM_CLOCK_HZ] = best
    if si[row, S_TM_STEP] > 0 and ticks != position * si[row, S_TM_STEP]:
        si[row, S_TM_STEP] = -1
    return si[row, S_TM_CLOCK_HZ]


@njit(cache=True, nogil=True)
def _rtcp(data, p, length, r, d, t_ns, ev, meta):  # pragma: no cover - numba
    """Sender reports and report blocks of one (compound) RTCP datagram as events.

    Only a datagram whose packets' lengths add up to it exactly (RFC 3550 §6.1: a
    compound packet is RTCP packets back to back) is read: SRTCP (RFC 3711 §3.4)
    encrypts everything after the first 8 bytes and appends an index and a tag, so its
    "report blocks" would be ciphertext read as SSRCs, losses and jitter."""
    end = p + length
    at = p
    while at + 4 <= end:
        if (np.int64(data[at]) & 0xC0) != RTP_VERSION_BITS:
            return
        at += (u16be(data, at + 2) + 1) * 4
    if at != end:
        return
    at = p
    made = 0
    while at + 4 <= end and made < MAX_RTCP_EVENTS:
        b0 = np.int64(data[at])
        if (b0 & 0xC0) != RTP_VERSION_BITS:
            return
        blocks = b0 & 0x1F
        pt = np.int64(data[at + 1])
        size = (u16be(data, at + 2) + 1) * 4
        if at + size > end:
            return  # a length past the datagram: the rest is not RTCP we can read
        first = 0
        if pt == RTCP_SR and size >= RTCP_SR_BYTES:
            k = meta[M_EVENTS]
            ev[k, EV_KIND] = EV_RTCP_SR
            ev[k, EV_ROW] = r
            ev[k, EV_A] = t_ns
            ev[k, EV_B] = u32be(data, at + 4)
            # NTP middle 32 bits (RFC 3550 §4): what a later report's LSR quotes.
            ntp_mid = ((u32be(data, at + 8) & 0xFFFF) << 16) | (u32be(data, at + 12) >> 16)
            ev[k, EV_C] = ntp_mid | (d << 32)
            ev[k, EV_D] = 0
            ev[k, EV_E] = 0
            meta[M_EVENTS] += 1
            made += 1
            first = at + RTCP_SR_BYTES
        elif pt == RTCP_RR and size >= RTCP_RR_BYTES:
            first = at + RTCP_RR_BYTES
        if first:
            for b in range(blocks):
                q = first + b * RTCP_BLOCK_BYTES
                if q + RTCP_BLOCK_BYTES > at + size or made >= MAX_RTCP_EVENTS:
                    break
                k = meta[M_EVENTS]
                ev[k, EV_KIND] = EV_RTCP_BLOCK
                ev[k, EV_ROW] = r
                ev[k, EV_A] = t_ns
                ev[k, EV_B] = u32be(data, q)
                cumulative = u32be(data, q + 4) & 0xFFFFFF
                ev[k, EV_C] = cumulative | (d << 24) | (u32be(data, q + 20) << 25)
                ev[k, EV_D] = u32be(data, q + 12) | (np.int64(data[q + 4]) << 32)
                ev[k, EV_E] = u32be(data, q + 16)
                meta[M_EVENTS] += 1
                made += 1
        at += size


@njit(cache=True, nogil=True)
def free_flow_rows(rows, slot_row, frows, ffree, sfree, meta):
    """Return flow rows and their stream rows to the pools; detach them from slots."""
    for r in rows:
        for k in range(2 * MAX_SSRCS):
            ref = frows[r, FR_STREAMS + k]
            if ref > 0:
                sfree[meta[M_SROWS_TOP]] = ref - 1
                meta[M_SROWS_TOP] += 1
        s = frows[r, FR_SLOT]
        if 0 <= s < slot_row.shape[0] and slot_row[s] == r + 1:
            slot_row[s] = 0
        frows[r, FR_FLOW_ID] = -1
        ffree[meta[M_FROWS_TOP]] = r
        meta[M_FROWS_TOP] += 1
