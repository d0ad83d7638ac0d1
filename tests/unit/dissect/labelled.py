"""One dissector over every flow of a shared capture, against the project's labels: the
flows it matches must be exactly the ones labelled with its protocol (the lookalike
tests of issue 4 use it: a real message must match, no other flow of the capture may)."""

from __future__ import annotations

import csv
import ipaddress
from pathlib import Path

from tests.dissectdrive import capture_flows, run
from voipscope.dissect.base import Dissector

LABELS = Path(__file__).resolve().parents[2] / "expected" / "labels"

Key = tuple[int, str, int, str, int]


def _canon(proto: int, a: str, ap: int, b: str, bp: int) -> Key:
    first, second = (ipaddress.ip_address(a), ap), (ipaddress.ip_address(b), bp)
    return (proto, a, ap, b, bp) if first <= second else (proto, b, bp, a, ap)


def labelled(capture: str, protocol: str) -> set[Key]:
    """The 5-tuples of ``capture`` labelled with ``protocol``."""
    with (LABELS / f"{capture}.csv").open() as fh:
        return {
            _canon(int(r["proto"]), r["a_ip"], int(r["a_port"]), r["b_ip"], int(r["b_port"]))
            for r in csv.DictReader(fh)
            if r["protocol"] == protocol
        }


def matched(dissector: Dissector, path: Path) -> set[Key]:
    """The 5-tuples of the capture at ``path`` whose packets ``dissector`` matches."""
    out = set()
    for flow in capture_flows(path):
        if flow.transport not in dissector.transports:
            continue
        ports = (flow.src[1], flow.dst[1])
        if dissector.ports is not None and dissector.ports.isdisjoint(ports):
            continue  # the stage would not offer it
        gate = dissector.tcp_first_bytes if flow.transport == 6 else None
        if gate is not None and flow.packets[0].payload[0] not in gate:
            continue  # nor this one (the UDP gate is applied by ``run``)
        if run(dissector, flow.context(), flow.packets).matched:
            out.add(_canon(flow.transport, *flow.src, *flow.dst))
    return out
