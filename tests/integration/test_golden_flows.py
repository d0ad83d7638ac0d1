"""Flow tables of real captures against tshark (goldens made by make_goldens.py).

Packets per direction must equal `tshark -z conv,udp -z conv,tcp`, and IP-layer bytes
the sum of ip.len / ipv6.plen + 40 over the same frames. Flows that an idle timeout
splits are summed per 5-tuple first (tshark has no timeouts), so every tuple counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import voipscope
from tests.integration.flow_compare import read_golden, voipscope_by_tuple
from tests.integration.make_goldens import GOLDEN_CAPTURES, tshark_packets

GOLDENS = Path(__file__).parent / "goldens"

# Tuples tshark sees that voipscope does not count, each with the reason.
KNOWN_GAPS = {
    # Frames 701+ are GTP-U (UDP 2152) carrying an inner IPv4/UDP flow. tshark counts
    # both conversations; voipscope accounts each user packet to the flow inside the
    # tunnel (decode.decapsulate_gtp, like nfstream's decode_tunnels), so the tunnel's
    # own flow has no packets left (every frame of it is a G-PDU).
    "zoom.pcap": {("udp", "10.132.15.176", 2152, "10.134.25.67", 2152)},
}


@pytest.mark.parametrize("name", GOLDEN_CAPTURES)
def test_flows_match_tshark(name, shared_captures):
    golden = read_golden(GOLDENS / f"{name}.csv")
    assert golden, "an empty golden proves nothing"
    got = voipscope_by_tuple(voipscope.read_flows(shared_captures / name))
    gaps = KNOWN_GAPS.get(name, set())
    for key in gaps:
        assert key in golden and key not in got, f"known gap {key} changed: update KNOWN_GAPS"
    expected = {k: v for k, v in golden.items() if k not in gaps}
    assert set(got) == set(expected)
    mismatches = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
    assert not mismatches, f"(tshark, voipscope) per tuple: {mismatches}"


def test_goldens_cover_every_link_type_and_format(shared_captures):
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for name in GOLDEN_CAPTURES:
        table = voipscope.read_flows(shared_captures / name)
        meta = json.loads(table.schema.metadata[b"voipscope.stats"])
        for info in meta["inputs"]:
            seen.add((info["format"], tuple(info["linktypes"])))
    assert {("pcap", (1,)), ("pcap", (113,)), ("pcap", (101,)), ("pcapng", (1,))} <= seen


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", GOLDEN_CAPTURES[:4])
def test_goldens_still_match_this_tshark(name, shared_captures):
    """The committed goldens are what the installed tshark says (catches stale goldens)."""
    try:
        live = tshark_packets(shared_captures / name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"tshark failed: {exc}")
    golden = read_golden(GOLDENS / f"{name}.csv")
    assert {k: v[:2] for k, v in golden.items()} == {k: list(v) for k, v in live.items()}
