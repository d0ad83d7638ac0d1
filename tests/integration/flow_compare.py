"""Aggregate voipscope flows per canonical 5-tuple, the way the goldens are keyed."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from tests.integration.make_goldens import Key, canonical


def voipscope_by_tuple(table: pa.Table) -> dict[Key, list[int]]:
    """Sum flows (a timeout may split one 5-tuple) into [a2b pkts, b2a pkts, a2b B, b2a B]."""
    out: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in table.filter(pa.compute.is_in(table["proto"], pa.array(["udp", "tcp"]))).to_pylist():
        key, swapped = canonical(r["proto"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"])
        fwd = [r["src2dst_packets"], r["src2dst_bytes"]]
        rev = [r["dst2src_packets"], r["dst2src_bytes"]]
        (a2b, b2a) = (rev, fwd) if swapped else (fwd, rev)
        acc = out[key]
        acc[0] += a2b[0]
        acc[1] += b2a[0]
        acc[2] += a2b[1]
        acc[3] += b2a[1]
    return out


def read_golden(path: Path) -> dict[Key, list[int]]:
    with path.open() as f:
        return {
            (r["proto"], r["a_ip"], int(r["a_port"]), r["b_ip"], int(r["b_port"])): [
                int(r["a2b_packets"]),
                int(r["b2a_packets"]),
                int(r["a2b_ip_bytes"]),
                int(r["b2a_ip_bytes"]),
            ]
            for r in csv.DictReader(f)
        }
