"""What tshark lists as RTP streams in a capture (``-z rtp,streams``), and a stream of a
voipscope call record held to its row."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_rtp_streams_vs_tshark import Key, TsharkStream, parse_rtp_streams


def listed(capture: Path, turn_port: int | None = None) -> dict[Key, TsharkStream]:
    """The streams tshark finds; with ``turn_port``, also inside TURN on that port (its
    default ``rtp_udp`` heuristic does not look inside ChannelData or DATA attributes)."""
    inside = [] if turn_port is None else [
        "-d", f"udp.port=={turn_port},stun", "-o", "rtp.heuristic_rtp:TRUE"]  # fmt: skip
    return parse_rtp_streams(subprocess.run(
        ["tshark", "-n", "-r", str(capture), *inside, "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout)  # fmt: skip


def key(stream: dict[str, Any]) -> Key:
    return (stream["src_ip"], stream["src_port"], stream["dst_ip"], stream["dst_port"],
            int(stream["ssrc"], 16))  # fmt: skip


def assert_as_tshark(stream: dict[str, Any], row: TsharkStream, jitter: bool = True) -> None:
    """Packets and loss equal, max delta to the microsecond, and (``jitter``) the mean
    jitter within 5 % or 0.1 ms (issue 5)."""
    assert (stream["packets"], stream["lost"]) == (row.packets, row.lost), (stream, row)
    assert stream["max_delta_ms"] == pytest.approx(row.max_delta_ms, abs=0.001), (stream, row)
    if jitter:
        assert stream["jitter_ms"] == pytest.approx(row.mean_jitter_ms, rel=0.05, abs=0.1), (
            stream, row)  # fmt: skip
