"""numba kernels of the bidirectional flow table.

Flows live as rows of one int64 matrix (one cache line or so per flow); an
open-addressing index (linear probing, backward-shift deletion) maps the 5-tuple hash to
the row. The hash is symmetric in the two endpoints, so both directions find the same
row without building a canonical key per packet.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.decode import status as S
from voipscope.row_pool import pop_row

# Columns of the flow matrix (and of the expired-flow buffer, which has the same layout).
F_ID = 0
F_PROTO = 1
F_IPVER = 2
F_SRC_HI = 3  # src = sender of the flow's first packet
F_SRC_LO = 4
F_DST_HI = 5
F_DST_LO = 6
F_SPORT = 7
F_DPORT = 8
F_FIRST_NS = 9
F_LAST_NS = 10
F_PKTS_FWD = 11  # src -> dst
F_PKTS_REV = 12
F_BYTES_FWD = 13  # IP-layer bytes
F_BYTES_REV = 14
F_FLAGS_FWD = 15  # OR of TCP flags
F_FLAGS_REV = 16
F_VLAN = 17
F_STATE = 18
F_END = 19
F_HASH = 20
F_FIRST_PACKET = 21  # number of the flow's first packet in the capture (0-based)
NF = 22

# F_STATE bits
LIVE = 1
FIN_FWD = 2
FIN_REV = 4
RST = 8
# Call media (a dissector found RTP, SRTP, RTCP, ... on the flow): its active timeout is
# M_MEDIA_ACTIVE_NS, so a call longer than the ordinary active timeout stays one flow
# and its streams one record each (FIELD §5.10: calls chopped by active timeouts).
CALL_MEDIA = 16

# F_END: why a flow ended
END_IDLE = 1
END_ACTIVE = 2
END_TCP = 3  # FIN both ways or RST, then idle or a new SYN
END_EVICTED = 4
END_CAPTURE = 5  # the input ended
END_NAMES = {END_IDLE: "idle", END_ACTIVE: "active-timeout", END_TCP: "tcp-end",
             END_EVICTED: "evicted", END_CAPTURE: "end-of-capture"}  # fmt: skip

# Meta vector
M_LIVE = 0
M_FREE_TOP = 1
M_NEXT_ID = 2
M_HIGH_WATER = 3
M_N_EXP = 4
M_IDLE_NS = 5
M_ACTIVE_NS = 6
M_TCP_CLOSED_NS = 7
M_MEDIA_ACTIVE_NS = 8  # the active timeout of CALL_MEDIA flows (0: none)
# The latest packet time accounted so far (a file's timestamps may go back: concatenated
# captures, a capture host's clock step): what the flows still live at the end of the
# input are judged against (FlowTable.flush).
M_CLOCK_NS = 9
M_LEN = 10

# update_flows stop reasons
DONE = 0
TABLE_FULL = 1
EXPIRED_FULL = 2
INDEX_FULL = 3  # the hash index is half full: grow it (keeps probe chains short)

TCP = 6
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10


@njit(cache=True, inline="always")
def _mix(x):
    # splitmix64 finaliser; int64 multiplication wraps, which is what we want here.
    x ^= (x >> 31) & 0x1FFFFFFFF
    x *= -0x40A7B892E31B1A47  # 0xBF58476D1CE4E5B9 as int64
    x ^= (x >> 27) & 0x1FFFFFFFFF
    x *= -0x6B2FB644ECCEEE15  # 0x94D049BB133111EB
    x ^= (x >> 31) & 0x1FFFFFFFF
    return x


@njit(cache=True, inline="always")
def flow_hash(proto, a_hi, a_lo, a_port, b_hi, b_lo, b_port):
    """Symmetric: swapping the endpoints gives the same hash."""
    ha = _mix(a_hi ^ _mix(a_lo ^ (a_port << 40)))
    hb = _mix(b_hi ^ _mix(b_lo ^ (b_port << 40)))
    return _mix(ha + hb + proto)


@njit(cache=True, nogil=True)
def _index_remove(flows, index, slot):
    mask = index.shape[0] - 1
    i = flows[slot, F_HASH] & mask
    while index[i] != slot:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        s = index[j]
        if s < 0:
            break
        k = flows[s, F_HASH] & mask
        # Leave s where it is if its home k lies cyclically in (i, j].
        if i <= j:
            stays = i < k <= j
        else:
            stays = k > i or k <= j
        if not stays:
            index[i] = s
            i = j
    index[i] = -1


@njit(cache=True, nogil=True)
def expire_slot(flows, index, free, meta, exp, slot, reason):
    """Copy the flow to the expired buffer, drop it from the index, free its row."""
    e = meta[M_N_EXP]
    exp[e, :] = flows[slot, :]
    exp[e, F_END] = reason
    meta[M_N_EXP] = e + 1
    _index_remove(flows, index, slot)
    flows[slot, F_STATE] = 0
    free[meta[M_FREE_TOP]] = slot
    meta[M_FREE_TOP] += 1
    meta[M_LIVE] -= 1


@njit(cache=True, inline="always")
def _end_reason(flows, meta, slot, ts, tcp_flags, packet):
    """Why a flow must end before counting a packet at ``ts`` (0: it goes on); a sweep
    asks at its time with ``packet`` False.

    Idle both ways for a packet: one from more than the idle timeout before the flow's
    first (a capture whose time went back: concatenated captures, a clock step) does not
    belong to it either; it would stretch the flow over the gap, and whether a sweep had
    ended the flow before that packet came would depend on where batches ended. A sweep
    leaves such "later" flows alone: a batch of the earlier stretch says nothing of them."""
    state = flows[slot, F_STATE]
    last = flows[slot, F_LAST_NS]
    if flows[slot, F_PROTO] == TCP and (
        (state & RST) or (state & (FIN_FWD | FIN_REV)) == FIN_FWD | FIN_REV
    ):
        if ts - last > meta[M_TCP_CLOSED_NS]:
            return END_TCP
        if (tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN:  # a new connection on the 5-tuple
            return END_TCP
    if ts - last > meta[M_IDLE_NS] or (packet and flows[slot, F_FIRST_NS] - ts > meta[M_IDLE_NS]):
        return END_IDLE
    active = meta[M_MEDIA_ACTIVE_NS] if state & CALL_MEDIA else meta[M_ACTIVE_NS]
    if active > 0 and ts - flows[slot, F_FIRST_NS] >= active:
        return END_ACTIVE
    return 0


@njit(cache=True, nogil=True)
def update_flows(
    flows, index, free, meta, exp, start, first_packet,
    status, ts_ns, ip_ver, proto, src_hi, src_lo, dst_hi, dst_lo, sport, dport,
    ip_bytes, tcp_flags, vlan,
    out_slot, out_flow_id, out_dir, out_seq,
):  # fmt: skip
    """Account packets [start, n) to flows. Returns (stopped_at, DONE|TABLE_FULL|EXPIRED_FULL)."""
    n = status.shape[0]
    mask = index.shape[0] - 1
    capacity = flows.shape[0]
    exp_cap = exp.shape[0]
    for i in range(start, n):
        if status[i] != S.OK:
            out_slot[i] = -1
            out_flow_id[i] = -1
            out_dir[i] = 0
            out_seq[i] = 0
            continue
        pr = np.int64(proto[i])
        s_hi = src_hi[i]
        s_lo = src_lo[i]
        d_hi = dst_hi[i]
        d_lo = dst_lo[i]
        sp = np.int64(sport[i])
        dp = np.int64(dport[i])
        ts = ts_ns[i]
        if ts > meta[M_CLOCK_NS]:
            meta[M_CLOCK_NS] = ts
        flags = np.int64(tcp_flags[i])
        h = flow_hash(pr, s_hi, s_lo, sp, d_hi, d_lo, dp)
        pos = h & mask
        slot = -1
        direction = 0
        while True:
            s = index[pos]
            if s < 0:
                break
            if flows[s, F_HASH] == h and flows[s, F_PROTO] == pr:
                if (flows[s, F_SRC_LO] == s_lo and flows[s, F_SRC_HI] == s_hi
                        and flows[s, F_SPORT] == sp and flows[s, F_DST_LO] == d_lo
                        and flows[s, F_DST_HI] == d_hi and flows[s, F_DPORT] == dp):  # fmt: skip
                    slot = s
                    direction = 0
                    break
                if (flows[s, F_SRC_LO] == d_lo and flows[s, F_SRC_HI] == d_hi
                        and flows[s, F_SPORT] == dp and flows[s, F_DST_LO] == s_lo
                        and flows[s, F_DST_HI] == s_hi and flows[s, F_DPORT] == sp):  # fmt: skip
                    slot = s
                    direction = 1
                    break
            pos = (pos + 1) & mask
        if slot >= 0:
            reason = _end_reason(flows, meta, slot, ts, flags, True)
            if reason:
                if meta[M_N_EXP] >= exp_cap:
                    return i, EXPIRED_FULL
                expire_slot(flows, index, free, meta, exp, slot, reason)
                slot = -1
        if slot < 0:
            if meta[M_LIVE] >= capacity:
                return i, TABLE_FULL
            if 2 * (meta[M_LIVE] + 1) > index.shape[0]:
                return i, INDEX_FULL
            # Fewer live flows than slots: a released slot or a never-used one is left.
            slot = pop_row(free, meta, M_FREE_TOP, M_HIGH_WATER, capacity)
            meta[M_LIVE] += 1
            row = flows[slot]
            row[:] = 0
            row[F_ID] = meta[M_NEXT_ID]
            meta[M_NEXT_ID] += 1
            row[F_PROTO] = pr
            row[F_IPVER] = ip_ver[i]
            row[F_SRC_HI] = s_hi
            row[F_SRC_LO] = s_lo
            row[F_DST_HI] = d_hi
            row[F_DST_LO] = d_lo
            row[F_SPORT] = sp
            row[F_DPORT] = dp
            row[F_FIRST_NS] = ts
            row[F_LAST_NS] = ts
            row[F_VLAN] = vlan[i]
            row[F_STATE] = LIVE
            row[F_HASH] = h
            row[F_FIRST_PACKET] = first_packet + i
            # Insert: find the first empty index slot from the home position.
            pos = h & mask
            while index[pos] >= 0:
                pos = (pos + 1) & mask
            index[pos] = slot
            direction = 0
        row = flows[slot]
        if ts > row[F_LAST_NS]:
            row[F_LAST_NS] = ts
        elif ts < row[F_FIRST_NS]:
            row[F_FIRST_NS] = ts
        row[F_PKTS_FWD + direction] += 1
        row[F_BYTES_FWD + direction] += ip_bytes[i]
        if pr == TCP:
            row[F_FLAGS_FWD + direction] |= flags
            if flags & TCP_RST:
                row[F_STATE] |= RST
            if flags & TCP_FIN:
                row[F_STATE] |= FIN_FWD if direction == 0 else FIN_REV
        out_slot[i] = slot
        out_flow_id[i] = row[F_ID]
        out_dir[i] = direction
        out_seq[i] = row[F_PKTS_FWD] + row[F_PKTS_REV]
    return n, DONE


@njit(cache=True, nogil=True)
def rebuild_index(flows, index, high_water):
    """Insert every live row into an empty (larger) index."""
    mask = index.shape[0] - 1
    for slot in range(high_water):
        if flows[slot, F_STATE] & LIVE:
            pos = flows[slot, F_HASH] & mask
            while index[pos] >= 0:
                pos = (pos + 1) & mask
            index[pos] = slot


@njit(cache=True, nogil=True)
def sweep(flows, index, free, meta, exp, now_ns, start_slot):
    """Expire flows idle (or too old) at capture time ``now_ns``.

    Returns the slot to resume from when the expired buffer filled, else -1.
    """
    exp_cap = exp.shape[0]
    for slot in range(start_slot, meta[M_HIGH_WATER]):
        if flows[slot, F_STATE] & LIVE == 0:
            continue
        reason = _end_reason(flows, meta, slot, now_ns, 0, False)
        if reason:
            if meta[M_N_EXP] >= exp_cap:
                return slot
            expire_slot(flows, index, free, meta, exp, slot, reason)
    return -1


@njit(cache=True, nogil=True)
def expire_slots(flows, index, free, meta, exp, slots, reason):
    """Expire the given live slots (eviction); the buffer must have room for them all."""
    for slot in slots:
        if flows[slot, F_STATE] & LIVE:
            expire_slot(flows, index, free, meta, exp, slot, reason)
