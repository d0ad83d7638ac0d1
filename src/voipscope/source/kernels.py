"""numba kernels that index capture records inside a window of bytes.

Each kernel walks records from ``pos`` and fills the output columns until the batch is
full, the window ends inside a record, or a record is impossible. It returns
``(n_packets, new_pos, status)``; the caller keeps the window state between calls.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voipscope.wire import u16, u32

# Why a kernel stopped.
BATCH_FULL = 0  # out arrays are full; call again from new_pos
NEED_MORE = 1  # the window ends inside a record (or exactly at new_pos)
CORRUPT = 2  # the record at new_pos cannot be right (length fields contradict)

# pcapng block types (draft-ietf-opsawg-pcapng §4.1)
SHB = 0x0A0D0D0A
IDB = 0x00000001
PB_OBSOLETE = 0x00000002
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IF_TSRESOL = 9  # option code, §4.2
IF_TSOFFSET = 14

# Layout of the pcapng reader state vector passed between kernel calls.
ST_BIG_ENDIAN = 0
ST_N_IF = 1
ST_LAST_TS = 2
ST_BAD_IF_PACKETS = 3  # packets naming an interface that was never described
ST_DROPPED_IFS = 4  # IDBs beyond the interface cap
ST_SKIPPED_BLOCKS = 5  # blocks of types we do not read (NRB, ISB, custom, ...)
ST_SECTIONS = 6
ST_LEN = 8

# Columns of the pcapng interface table.
IF_LINKTYPE = 0
IF_SNAPLEN = 1
IF_RES_POW2 = 2  # 0: resolution is 10^-v s; 1: 2^-v s
IF_RES_VALUE = 3
IF_OFFSET_S = 4
IF_COLS = 5


@njit(cache=True, nogil=True)
def index_pcap(
    buf, pos, big_endian, nanosecond, record_header_bytes, max_caplen, linktype,
    out_off, out_caplen, out_wirelen, out_ts, out_link,
):  # fmt: skip
    """Index classic pcap records (the libpcap file format, draft-ietf-opsawg-pcap §5)."""
    end = buf.shape[0]
    cap = out_off.shape[0]
    frac_mult = 1 if nanosecond else 1000
    n = 0
    while n < cap:
        if end - pos < record_header_bytes:
            return n, pos, NEED_MORE
        sec = u32(buf, pos, big_endian)
        frac = u32(buf, pos + 4, big_endian)
        incl = u32(buf, pos + 8, big_endian)
        orig = u32(buf, pos + 12, big_endian)
        if incl > max_caplen:
            return n, pos, CORRUPT
        if end - pos - record_header_bytes < incl:
            return n, pos, NEED_MORE
        out_off[n] = pos + record_header_bytes
        out_caplen[n] = incl
        out_wirelen[n] = orig
        out_ts[n] = sec * 1_000_000_000 + frac * frac_mult
        out_link[n] = linktype
        n += 1
        pos += record_header_bytes + incl
    return n, pos, BATCH_FULL


@njit(cache=True, nogil=True, inline="always")
def _pcapng_ts_ns(iface, ts_raw):
    value = iface[IF_RES_VALUE]
    if iface[IF_RES_POW2] == 0:
        if value <= 9:
            ns = ts_raw * 10 ** (9 - value)
        elif value <= 27:
            ns = ts_raw // 10 ** (value - 9)
        else:
            # 10^(value-9) does not fit in int64 (from 10^64 on it wraps to 0 and the
            # division would raise); every int64 tick count is below it, so 0 ns.
            ns = np.int64(0)
    elif value <= 33:
        ns = (ts_raw >> value) * 1_000_000_000 + (
            ((ts_raw & ((1 << value) - 1)) * 1_000_000_000) >> value
        )
    else:
        ns = np.int64(ts_raw / 2.0**value * 1e9)
    return ns + iface[IF_OFFSET_S] * 1_000_000_000


@njit(cache=True, nogil=True, inline="always")
def _read_idb_options(buf, p, stop, be, iface):
    """Walk the option list of an IDB for if_tsresol and if_tsoffset (§4.2)."""
    while stop - p >= 4:
        code = u16(buf, p, be)
        length = u16(buf, p + 2, be)
        p += 4
        if code == 0 or stop - p < length:
            return
        if code == IF_TSRESOL and length >= 1:
            raw = np.int64(buf[p])
            iface[IF_RES_POW2] = raw >> 7
            iface[IF_RES_VALUE] = raw & 0x7F
        elif code == IF_TSOFFSET and length >= 8:
            offset = (
                (u32(buf, p + 4, be) << 32) | u32(buf, p, be)
                if not be
                else ((u32(buf, p, be) << 32) | u32(buf, p + 4, be))
            )
            iface[IF_OFFSET_S] = offset
        p += (length + 3) & ~3


@njit(cache=True, nogil=True)
def index_pcapng(
    buf, pos, state, ifaces, max_caplen, out_off, out_caplen, out_wirelen, out_ts, out_link,
):  # fmt: skip
    """Index pcapng blocks (draft-ietf-opsawg-pcapng): SHB, IDB, EPB, SPB, obsolete PB."""
    end = buf.shape[0]
    cap = out_off.shape[0]
    max_ifaces = ifaces.shape[0]
    n = 0
    while n < cap:
        if end - pos < 12:
            return n, pos, NEED_MORE
        be = state[ST_BIG_ENDIAN] == 1
        btype = u32(buf, pos, be)
        if btype == SHB:
            magic_le = u32(buf, pos + 8, False)
            if magic_le == BYTE_ORDER_MAGIC:
                be = False
            elif u32(buf, pos + 8, True) == BYTE_ORDER_MAGIC:
                be = True
            else:
                return n, pos, CORRUPT
        blen = u32(buf, pos + 4, be)
        if blen < 12 or blen % 4 != 0 or blen > max_caplen + 64 * 1024:
            return n, pos, CORRUPT
        if end - pos < blen:
            return n, pos, NEED_MORE
        if u32(buf, pos + blen - 4, be) != blen:
            return n, pos, CORRUPT
        if btype == SHB:
            if blen < 28:
                return n, pos, CORRUPT
            # A new section: new byte order, interfaces numbered from 0 again (§4.1).
            state[ST_BIG_ENDIAN] = 1 if be else 0
            state[ST_N_IF] = 0
            state[ST_SECTIONS] += 1
        elif btype == IDB:
            if blen < 20:
                return n, pos, CORRUPT
            k = state[ST_N_IF]
            if k < max_ifaces:
                ifaces[k, IF_LINKTYPE] = u16(buf, pos + 8, be)
                ifaces[k, IF_SNAPLEN] = u32(buf, pos + 12, be)
                ifaces[k, IF_RES_POW2] = 0
                ifaces[k, IF_RES_VALUE] = 6  # microseconds unless if_tsresol says otherwise
                ifaces[k, IF_OFFSET_S] = 0
                _read_idb_options(buf, pos + 16, pos + blen - 4, be, ifaces[k])
            else:
                state[ST_DROPPED_IFS] += 1
            state[ST_N_IF] = k + 1
        elif btype == EPB or btype == PB_OBSOLETE:
            if blen < 32:
                return n, pos, CORRUPT
            if btype == EPB:
                if_id = u32(buf, pos + 8, be)
            else:
                if_id = u16(buf, pos + 8, be)
            incl = u32(buf, pos + 20, be)
            orig = u32(buf, pos + 24, be)
            if incl > blen - 32 or incl > max_caplen:
                return n, pos, CORRUPT
            if if_id >= state[ST_N_IF] or if_id >= max_ifaces:
                state[ST_BAD_IF_PACKETS] += 1
            else:
                ts_raw = (u32(buf, pos + 12, be) << 32) | u32(buf, pos + 16, be)
                ts = _pcapng_ts_ns(ifaces[if_id], ts_raw)
                state[ST_LAST_TS] = ts
                out_off[n] = pos + 28
                out_caplen[n] = incl
                out_wirelen[n] = orig
                out_ts[n] = ts
                out_link[n] = ifaces[if_id, IF_LINKTYPE]
                n += 1
        elif btype == SPB:
            if blen < 16:
                return n, pos, CORRUPT
            if state[ST_N_IF] < 1:
                state[ST_BAD_IF_PACKETS] += 1
            else:
                orig = u32(buf, pos + 8, be)
                incl = min(orig, blen - 16)
                snaplen = ifaces[0, IF_SNAPLEN]
                if snaplen > 0:
                    incl = min(incl, snaplen)
                # An SPB has no timestamp (§4.4): we give it the previous packet's time.
                out_off[n] = pos + 12
                out_caplen[n] = incl
                out_wirelen[n] = orig
                out_ts[n] = state[ST_LAST_TS]
                out_link[n] = ifaces[0, IF_LINKTYPE]
                n += 1
        else:
            state[ST_SKIPPED_BLOCKS] += 1
        pos += blen
    return n, pos, BATCH_FULL
