"""Media over TCP cut back into packets for the RTP kernel (numba).

Two framings carry RTP and RTCP over a TCP byte stream:

- RFC 4571 §2: each RTP or RTCP packet is preceded by a 16-bit length, nothing else
  (RTP over TCP to a media server, GStreamer's ``rtpstreampay``, ...).
- TURN over TCP (RFC 8656 §12.5, client to relay): STUN messages (20-byte header, the
  length of the attributes, a multiple of 4) and ChannelData messages (4-byte header, the
  length of the data, padded to a multiple of 4 over TCP) follow each other with no
  other framing. Media rides in ChannelData or in Send/Data indications; the RTP kernel
  unwraps both, so this module hands it the messages as they are.

The RTP kernel reads datagrams; here each TCP direction (a *lane*) follows the stream by
its TCP sequence numbers, keeps the bytes of a packet split over segments until it is
whole, and hands out every whole packet as a datagram of its own, timed by the segment
that completed it. Retransmitted bytes are dropped by sequence number (they are not RTP
duplicates), overlapping ones trimmed. A segment that comes before the bytes in front of
it (reordering, or a capture taken behind a loss, where TCP's retransmission fills the
hole later) is set aside, up to STASH_SLOTS segments of an MSS, and read when the hole
fills: its packets are timed by the segment that filled it, when the receiving
application got them (head-of-line blocking is what TCP does to media).

A lane is opened only by a segment that is *exactly* framed: one or more whole packets
of one framing that end where the segment ends, each RTP/RTCP one of version 2 (or a
STUN message with the magic cookie). Random bytes pass that by chance about once in
65536 segments, so bulk TCP costs a byte test per segment and no state. Senders write a
packet (or a few) per send, so a media stream's first data segment opens its lane. A
stream whose every packet spans segments (video packets larger than the MSS) never
offers such a segment and is not cut. When bytes are missing (a hole in the sequence
numbers, the capture's loss) or a packet does not parse, the lane drops the partial
packet and waits for the next exactly framed segment. A hole is given up, and what was
set aside read as it stands, when the set-aside segments fill up, when the hole is
HOLE_WAIT_NS old, when the connection closes (FIN or RST) or when the flow ends (idle,
evicted, or the capture is over: ``read_left_aside``): the capture never saw those bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.decode import status as S
from voipscope.decode.tcp_seq import SEQ_SPACE, seq_ahead, tcp_seq
from voipscope.dissect.stun_wire import (
    CHANNEL_FIRST_BYTE_MAX,
    CHANNEL_FIRST_BYTE_MIN,
    CHANNEL_HEADER_BYTES,
    STUN_DATA_INDICATION,
    STUN_HEADER_BYTES,
    STUN_MAGIC_COOKIE,
    STUN_SEND_INDICATION,
)
from voipscope.quality.rtp_kernel import AFTER_CAPTURE_HOLE, RTCP_MIN_BYTES, RTP_VERSION_BITS
from voipscope.row_pool import pop_row
from voipscope.wire import u16be, u32be

TCP = 6
RFC4571_PREFIX_BYTES = 2  # RFC 4571 §2: LENGTH, 16 bits, network order
# The RTP constants are the RTP kernel's, which reads the same messages inside datagrams;
# the ChannelData (RFC 8656 §12.4; §12.5: padded to 4 bytes over TCP) and STUN ones are
# dissect/stun_wire.py's.

FRAMING_NONE = 0
FRAMING_RFC4571 = 1
FRAMING_TURN = 2
MAX_FRAMES_PER_SEGMENT = 256  # an exactness walk gives up beyond (a jumbo of tiny frames)
# A lane buffers one packet (the largest is a STUN message, 20 + 65535 bytes), then the
# segments set aside in front of a hole, one slot each: an Ethernet MSS fits a slot;
# larger (GRO-merged) segments are not set aside.
FRAME_BYTES = STUN_HEADER_BYTES + 65536
STASH_SLOTS = 32  # 0.6 s of 20 ms packets: a retransmission timeout's worth
STASH_SLOT_BYTES = 2048
LANE_BYTES = FRAME_BYTES + STASH_SLOTS * STASH_SLOT_BYTES
# Longer than TCP's retransmission timeouts before backoff (RFC 6298 §2: 1 s initial, and
# Linux's 200 ms minimum): a retransmission that fills the hole comes well before.
HOLE_WAIT_NS = 2_000_000_000
TCP_FIN = 0x01
TCP_RST = 0x04

# Lane columns
LN_FLOW_ID = 0  # -1: free
LN_SLOT = 1
LN_DIR = 2
LN_FRAMING = 3
LN_NEXT_SEQ = 4  # the next byte expected, -1: not known
LN_HAVE = 5  # bytes of the current packet held in the lane's buffer
LN_NEED = 6  # its size with framing, 0 while its header is incomplete
LN_HUNT = 7  # lost the framing: wait for an exactly framed segment
LN_STASHED = 8  # segments set aside
LN_STASHED_BYTES = 9
LN_ASIDE_SINCE_NS = 10  # capture time of the oldest segment set aside
LN_AFTER_HOLE = 11  # bytes went missing: the next frame out says so
LN_STASH = 12  # STASH_SLOTS pairs (sequence number, length; 0: free)
LN_LEN = LN_STASH + 2 * STASH_SLOTS

# meta
LM_TOP = 0  # free-list stack of lanes
LM_HIGH = 1  # lanes ever used
LM_FRAMES = 2  # frames handed out in this call
LM_OUT = 3  # bytes of out_buf used in this call
LM_LEN = 4

DONE = 0
LANES_FULL = 1
OUT_FULL = 2

# Rows of the frames out
FRAME_PACKET = 0  # the packet (segment) that completed the frame
FRAME_OFFSET = 1  # in out_buf
FRAME_LENGTH = 2
FRAME_FLAGS = 3
FRAME_ROWS = 4
# FRAME_FLAGS: AFTER_CAPTURE_HOLE (the RTP kernel's in_extra bit): bytes of the stream in
# front of this frame were never captured (a hole given up), so sequence numbers it
# skips are missing from the capture, not lost.

NEED_MORE = -1  # the frame's header is not all there yet
BAD = -2  # not a frame of this framing


@njit(cache=True, nogil=True, inline="always")
def header_bytes(framing):
    """Bytes needed to know a frame's size and check its first byte inside."""
    if framing == FRAMING_RFC4571:
        return RFC4571_PREFIX_BYTES + 1
    return CHANNEL_HEADER_BYTES


@njit(cache=True, nogil=True)
def frame_size(framing, data, p, available):
    """Size with framing of the frame at ``data[p:]`` (NEED_MORE, BAD)."""
    if available < header_bytes(framing):
        return NEED_MORE
    if framing == FRAMING_RFC4571:
        inner = u16be(data, p)
        if inner < RTCP_MIN_BYTES or (data[p + 2] & 0xC0) != RTP_VERSION_BITS:
            return BAD
        return RFC4571_PREFIX_BYTES + inner
    b0 = data[p]
    if CHANNEL_FIRST_BYTE_MIN <= b0 <= CHANNEL_FIRST_BYTE_MAX:
        inner = u16be(data, p + 2)
        return CHANNEL_HEADER_BYTES + inner + (-inner & 3)
    if b0 & 0xC0 == 0:
        inner = u16be(data, p + 2)
        if inner & 3:
            return BAD
        return STUN_HEADER_BYTES + inner
    return BAD


@njit(cache=True, nogil=True)
def _whole_frame_ok(framing, data, p, size):
    """A whole frame's own check: a STUN message carries the magic cookie."""
    if framing == FRAMING_TURN and data[p] & 0xC0 == 0:
        return size >= STUN_HEADER_BYTES and u32be(data, p + 4) == STUN_MAGIC_COOKIE
    return True


@njit(cache=True, nogil=True)
def exact_framing(data, p, length):
    """The framing of which ``data[p:p + length]`` is whole frames, FRAMING_NONE if
    neither (RFC 4571 is tried first: its frames begin 0x00-0xFF, TURN's 0x00-0x4F)."""
    for framing in (FRAMING_RFC4571, FRAMING_TURN):
        q = p
        end = p + length
        count = 0
        while q < end and count < MAX_FRAMES_PER_SEGMENT:
            size = frame_size(framing, data, q, end - q)
            if size < 0 or q + size > end or not _whole_frame_ok(framing, data, q, size):
                break
            q += size
            count += 1
        if q == end and count > 0:
            return framing
    return FRAMING_NONE


@njit(cache=True, nogil=True, inline="always")
def _emit(framing, src, p, size, i, out_buf, frames, meta, flags):
    """One whole frame out as a datagram: RFC 4571 without its prefix; TURN ChannelData
    and Send/Data indications as they are (padding off); other STUN messages not at all
    (False)."""
    if framing == FRAMING_RFC4571:
        p += RFC4571_PREFIX_BYTES
        size -= RFC4571_PREFIX_BYTES
    elif CHANNEL_FIRST_BYTE_MIN <= src[p] <= CHANNEL_FIRST_BYTE_MAX:
        size = CHANNEL_HEADER_BYTES + u16be(src, p + 2)
    else:
        kind = u16be(src, p)
        if kind != STUN_SEND_INDICATION and kind != STUN_DATA_INDICATION:
            return False
    at = meta[LM_OUT]
    out_buf[at : at + size] = src[p : p + size]
    k = meta[LM_FRAMES]
    frames[FRAME_PACKET, k] = i
    frames[FRAME_OFFSET, k] = at
    frames[FRAME_LENGTH, k] = size
    frames[FRAME_FLAGS, k] = flags
    meta[LM_FRAMES] += 1
    meta[LM_OUT] += size
    return True


@njit(cache=True, nogil=True, inline="always")
def _emit_in_lane(lane, lanes, framing, src, p, size, i, out_buf, frames, meta):
    """_emit, the first frame after bytes the capture never saw saying so."""
    flags = AFTER_CAPTURE_HOLE if lanes[lane, LN_AFTER_HOLE] else 0
    if _emit(framing, src, p, size, i, out_buf, frames, meta, flags):
        lanes[lane, LN_AFTER_HOLE] = 0


@njit(cache=True, nogil=True)
def _feed(lane, lanes, lane_buf, data, q, end, i, out_buf, frames, meta):
    """The bytes ``data[q:end]`` of a lane in order. False: the framing was lost."""
    framing = lanes[lane, LN_FRAMING]
    held = lane_buf[lane]
    while q < end:
        have = lanes[lane, LN_HAVE]
        if have == 0:
            size = frame_size(framing, data, q, end - q)
            if size == BAD:
                return False
            if size > 0 and q + size <= end:
                if not _whole_frame_ok(framing, data, q, size):
                    return False
                _emit_in_lane(lane, lanes, framing, data, q, size, i, out_buf, frames, meta)
                q += size
                continue
            lanes[lane, LN_NEED] = max(size, 0)
        need = lanes[lane, LN_NEED]
        if need == 0:  # the header first
            take = min(header_bytes(framing) - have, end - q)
            held[have : have + take] = data[q : q + take]
            have += take
            q += take
            lanes[lane, LN_HAVE] = have
            need = frame_size(framing, held, 0, have)
            if need == BAD:
                return False
            if need == NEED_MORE:
                continue
            lanes[lane, LN_NEED] = need
        take = min(need - have, end - q)
        held[have : have + take] = data[q : q + take]
        have += take
        q += take
        lanes[lane, LN_HAVE] = have
        if have == need:
            if not _whole_frame_ok(framing, held, 0, need):
                return False
            _emit_in_lane(lane, lanes, framing, held, 0, need, i, out_buf, frames, meta)
            lanes[lane, LN_HAVE] = 0
            lanes[lane, LN_NEED] = 0
    return True


@njit(cache=True, nogil=True, inline="always")
def _lost_framing(lanes, lane):
    lanes[lane, LN_HAVE] = 0
    lanes[lane, LN_NEED] = 0
    lanes[lane, LN_HUNT] = 1


@njit(cache=True, nogil=True)
def _take(lane, lanes, lane_buf, data, p, length, seq, i, out_buf, frames, meta):
    """A segment's bytes into the lane, in order as far as the lane knows: bytes already
    read are skipped, missing ones lose the framing (then an exactly framed segment
    anchors it again)."""
    if seq >= 0 and lanes[lane, LN_NEXT_SEQ] >= 0:
        ahead = seq_ahead(seq, lanes[lane, LN_NEXT_SEQ])
        if ahead + length <= 0:
            return  # a retransmission of bytes already read
        if ahead < 0:
            p -= ahead  # overlaps what was read: the new bytes only
            length += ahead
            seq = (seq - ahead) % SEQ_SPACE
        elif ahead > 0:
            _lost_framing(lanes, lane)  # bytes missing from the capture
            lanes[lane, LN_AFTER_HOLE] = 1
    if seq >= 0:
        lanes[lane, LN_NEXT_SEQ] = (seq + length) % SEQ_SPACE
    if lanes[lane, LN_HUNT]:
        framing = exact_framing(data, p, length)
        if framing == FRAMING_NONE:
            return
        lanes[lane, LN_FRAMING] = framing  # (re)anchored on an exactly framed segment
        lanes[lane, LN_HUNT] = 0
    if not _feed(lane, lanes, lane_buf, data, p, p + length, i, out_buf, frames, meta):
        _lost_framing(lanes, lane)


@njit(cache=True, nogil=True)
def _set_aside(lane, lanes, lane_buf, data, p, length, seq, t_ns):
    """Keep a segment that came before the bytes in front of it. False: no room, or the
    hole waited long enough."""
    if length > STASH_SLOT_BYTES or lanes[lane, LN_STASHED] >= STASH_SLOTS:
        return False
    if lanes[lane, LN_STASHED] == 0:
        lanes[lane, LN_ASIDE_SINCE_NS] = t_ns
    elif t_ns - lanes[lane, LN_ASIDE_SINCE_NS] > HOLE_WAIT_NS:
        return False
    for k in range(STASH_SLOTS):
        if lanes[lane, LN_STASH + 2 * k + 1] == 0:
            at = FRAME_BYTES + k * STASH_SLOT_BYTES
            lane_buf[lane, at : at + length] = data[p : p + length]
            lanes[lane, LN_STASH + 2 * k] = seq
            lanes[lane, LN_STASH + 2 * k + 1] = length
            lanes[lane, LN_STASHED] += 1
            lanes[lane, LN_STASHED_BYTES] += length
            return True
    return False


@njit(cache=True, nogil=True)
def _read_set_aside(lane, lanes, lane_buf, i, out_buf, frames, meta, all_of):
    """Read the set-aside segments the lane has reached (``all_of``: every one, nearest
    first, the hole given up), each when its turn comes."""
    while lanes[lane, LN_STASHED] > 0:
        best = -1
        best_ahead = SEQ_SPACE
        for k in range(STASH_SLOTS):
            if lanes[lane, LN_STASH + 2 * k + 1] > 0:
                ahead = seq_ahead(lanes[lane, LN_STASH + 2 * k], lanes[lane, LN_NEXT_SEQ])
                if ahead < best_ahead:
                    best, best_ahead = k, ahead
        if best_ahead > 0 and not all_of:
            return
        seq = lanes[lane, LN_STASH + 2 * best]
        length = lanes[lane, LN_STASH + 2 * best + 1]
        lanes[lane, LN_STASH + 2 * best + 1] = 0
        lanes[lane, LN_STASHED] -= 1
        lanes[lane, LN_STASHED_BYTES] -= length
        at = FRAME_BYTES + best * STASH_SLOT_BYTES
        _take(lane, lanes, lane_buf, lane_buf[lane], at, length, seq, i,
              out_buf, frames, meta)  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _room(lanes, lane, length, meta, out_buf, frames):
    """Room in the outputs for everything ``length`` new bytes of a lane (-1: none yet)
    can complete with what it holds and has set aside."""
    held = lanes[lane, LN_HAVE] + lanes[lane, LN_STASHED_BYTES] if lane >= 0 else 0
    return (
        meta[LM_OUT] + held + length <= out_buf.shape[0]
        and meta[LM_FRAMES] + (held + length) // RTCP_MIN_BYTES + 1 <= frames.shape[1]
    )


@njit(cache=True, nogil=True, inline="always")
def _give_up_hole(lane, lanes, lane_buf, i, out_buf, frames, meta):
    """No retransmission will fill the lane's hole (the connection closed, the flow
    ended): what it set aside is read as it stands, timed by packet ``i``. False, with
    nothing changed: no room in the outputs yet."""
    if not _room(lanes, lane, 0, meta, out_buf, frames):
        return False
    _read_set_aside(lane, lanes, lane_buf, i, out_buf, frames, meta, True)
    return True


@njit(cache=True, nogil=True)
def cut_frames(
    buf, in_extra, l4_off, l4_len, status, proto, sport, dport, tcp_flags, ts_ns, slot,
    flow_id, direction, start, slot_lane, lanes, lane_buf, lfree, meta, out_buf, frames,
):  # fmt: skip
    """Cut the media frames out of the TCP segments of packets [start, n).

    ``slot_lane[2 * slot + direction]``: 1 + the lane of that TCP direction (0: none).
    Frames go to ``out_buf`` (bytes) and ``frames`` (FRAME_* rows: the packet that
    completed each, its offset in ``out_buf``, its length, its FRAME_FLAGS), counted in
    ``meta[LM_FRAMES]``/``meta[LM_OUT]`` from where the caller left them. Returns
    (stopped_at, DONE | LANES_FULL | OUT_FULL): the packet it stopped before, untouched.
    """
    n = status.shape[0]
    for i in range(start, n):
        length = np.int64(l4_len[i])
        if proto[i] != TCP or status[i] != S.OK or in_extra[i]:
            continue
        s = slot[i]
        if not 0 <= 2 * s + 1 < slot_lane.shape[0]:
            continue
        if length <= 0:
            if tcp_flags[i] & (TCP_FIN | TCP_RST):
                # The connection closes: no retransmission will fill a hole either way.
                for d in range(2):
                    other = slot_lane[2 * s + d] - 1
                    mine = (
                        other >= 0
                        and lanes[other, LN_FLOW_ID] == flow_id[i]
                        and lanes[other, LN_STASHED] > 0
                    )
                    if mine and not _give_up_hole(other, lanes, lane_buf, i, out_buf, frames, meta):
                        return i, OUT_FULL
            continue
        key = 2 * s + np.int64(direction[i])
        lane = slot_lane[key] - 1
        if lane >= 0 and lanes[lane, LN_FLOW_ID] != flow_id[i]:
            slot_lane[key] = 0  # the slot's flow ended: its lane is freed at expiry
            lane = -1
        p = np.int64(l4_off[i])
        if p < 0 or p + length > buf.shape[0]:
            continue  # not the decoder's promise; never read outside it
        if lane < 0 and exact_framing(buf, p, length) == FRAMING_NONE:
            continue
        # Room for everything this segment can complete (the held and set-aside bytes
        # and its own), checked before anything changes so that the caller can grow and
        # call again.
        if not _room(lanes, lane, length, meta, out_buf, frames):
            return i, OUT_FULL
        if lane < 0:
            lane = pop_row(lfree, meta, LM_TOP, LM_HIGH, lanes.shape[0])
            if lane < 0:
                return i, LANES_FULL
            lanes[lane, :] = 0
            lanes[lane, LN_FLOW_ID] = flow_id[i]
            lanes[lane, LN_SLOT] = s
            lanes[lane, LN_DIR] = direction[i]
            lanes[lane, LN_NEXT_SEQ] = -1
            lanes[lane, LN_HUNT] = 1
            slot_lane[key] = lane + 1
        seq = tcp_seq(buf, p, sport[i], dport[i])
        if seq >= 0 and lanes[lane, LN_NEXT_SEQ] >= 0 and not lanes[lane, LN_HUNT]:
            ahead = seq_ahead(seq, lanes[lane, LN_NEXT_SEQ])
            if ahead > 0:
                if _set_aside(lane, lanes, lane_buf, buf, p, length, seq, ts_ns[i]):
                    continue  # read when the hole in front of it fills
                # No room, or waited enough: the hole is given up, what was set aside
                # read as it stands.
                _read_set_aside(lane, lanes, lane_buf, i, out_buf, frames, meta, True)
        _take(lane, lanes, lane_buf, buf, p, length, seq, i, out_buf, frames, meta)
        if lanes[lane, LN_STASHED]:
            _read_set_aside(lane, lanes, lane_buf, i, out_buf, frames,
                            meta, False)  # fmt: skip
    return n, DONE


@njit(cache=True, nogil=True)
def read_left_aside(ending, start, lanes, lane_buf, meta, out_buf, frames):
    """The flows of the lanes ``ending`` end: no retransmission will fill their holes,
    so what each set aside is read as it stands (``_read_set_aside``, every one), frame
    k of ``ending[k]`` named by FRAME_PACKET k. Returns (stopped_at, DONE | OUT_FULL)
    as ``cut_frames`` does, from ``start``."""
    for k in range(start, ending.shape[0]):
        if not _give_up_hole(ending[k], lanes, lane_buf, k, out_buf, frames, meta):
            return k, OUT_FULL
    return ending.shape[0], DONE


def new_lanes(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lanes, lane_buf, lfree) for ``count`` lanes; np.zeros is calloc, so a lane's
    128 kB buffer costs memory only as far as its packets and set-aside segments fill it."""
    lanes = np.zeros((count, LN_LEN), np.int64)
    lanes[:, LN_FLOW_ID] = -1
    return lanes, np.zeros((count, LANE_BYTES), np.uint8), np.zeros(count, np.int64)


def free_lanes(
    ended: np.ndarray,
    slot_lane: np.ndarray,
    lanes: np.ndarray,
    lfree: np.ndarray,
    meta: np.ndarray,
) -> None:
    """Free the lanes ``ended`` of ended flows (called at expiry; lanes are few)."""
    for lane in ended.tolist():
        key = 2 * int(lanes[lane, LN_SLOT]) + int(lanes[lane, LN_DIR])
        if slot_lane[key] == lane + 1:
            slot_lane[key] = 0
        lanes[lane, LN_FLOW_ID] = -1
        lfree[meta[LM_TOP]] = lane
        meta[LM_TOP] += 1
