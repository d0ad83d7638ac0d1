"""Flow matrices (flows.kernels F_* columns) -> Arrow record batches of FLOW_SCHEMA."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import numpy as np
import pyarrow as pa

from voipscope.flows import kernels as K
from voipscope.output.schema import FLOW_SCHEMA

PROTO_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah",
               58: "icmpv6", 89: "ospf", 132: "sctp", 136: "udplite"}  # fmt: skip
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})
# RFC 9293 §3.1 control bits, lowest first; ECE and CWR from RFC 3168.
_TCP_FLAG_LETTERS = tuple(zip("FSRPAUEC", (1 << b for b in range(8)), strict=True))
_MASK64 = (1 << 64) - 1


@lru_cache(maxsize=1 << 16)
def format_ip(version: int, hi: int, lo: int) -> str:
    """Render an address kept as two int64 halves (IPv4 in IPv4-mapped form)."""
    if version == 4:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(((hi & _MASK64) << 64) | (lo & _MASK64)))


@lru_cache(maxsize=256)
def format_tcp_flags(flags: int) -> str:
    return "".join(letter for letter, bit in _TCP_FLAG_LETTERS if flags & bit)


def flows_to_batch(rows: np.ndarray, capture: str) -> pa.RecordBatch:
    """One Arrow batch of Flow records; VoIP fields stay 'unknown' until classification."""
    n = rows.shape[0]
    col = rows.T
    proto = col[K.F_PROTO]
    version = col[K.F_IPVER]
    has_ports = np.isin(proto, list(PORT_PROTOCOLS))
    is_tcp = proto == K.TCP
    first = col[K.F_FIRST_NS] / 1e9
    last = col[K.F_LAST_NS] / 1e9
    vlan = col[K.F_VLAN]
    ver_list = version.tolist()

    def ips(hi_col: int, lo_col: int) -> list[str]:
        return [
            format_ip(v, h, lo)
            for v, h, lo in zip(ver_list, col[hi_col].tolist(), col[lo_col].tolist(), strict=True)
        ]

    def flags(col_id: int) -> list[str | None]:
        return [
            format_tcp_flags(f) if t else None
            for f, t in zip(col[col_id].tolist(), is_tcp.tolist(), strict=True)
        ]

    def ports(col_id: int) -> pa.Array:
        return pa.array(col[col_id].astype(np.int32), mask=~has_ports)

    arrays = [
        pa.array(col[K.F_ID]),
        pa.array([capture] * n, pa.string()),
        pa.array([PROTO_NAMES.get(p, str(p)) for p in proto.tolist()], pa.string()),
        pa.array(version.astype(np.int8)),
        pa.array(ips(K.F_SRC_HI, K.F_SRC_LO), pa.string()),
        ports(K.F_SPORT),
        pa.array(ips(K.F_DST_HI, K.F_DST_LO), pa.string()),
        ports(K.F_DPORT),
        pa.array(first),
        pa.array(last),
        pa.array(last - first),
        pa.array(col[K.F_PKTS_FWD]),
        pa.array(col[K.F_PKTS_REV]),
        pa.array(col[K.F_BYTES_FWD]),
        pa.array(col[K.F_BYTES_REV]),
        pa.array(flags(K.F_FLAGS_FWD), pa.string()),
        pa.array(flags(K.F_FLAGS_REV), pa.string()),
        pa.array(vlan.astype(np.int32), mask=vlan < 0),
        pa.array([K.END_NAMES.get(e, "unknown") for e in col[K.F_END].tolist()], pa.string()),
        pa.array(["unknown"] * n, pa.string()),
        pa.nulls(n, pa.string()),
        pa.nulls(n, pa.string()),
        pa.nulls(n, pa.string()),
        pa.array(np.zeros(n)),
        pa.array([[] for _ in range(n)], pa.list_(pa.string())),
        pa.nulls(n, pa.int64()),
        pa.nulls(n, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=FLOW_SCHEMA)
