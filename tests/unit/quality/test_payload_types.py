"""RFC 3551 §6 payload types, SDP overrides, and why a jitter can be unknown."""

from __future__ import annotations

from voipscope.quality.payload_types import (
    clock_rate_hz,
    clock_table_hz,
    encoding_name,
    jitter_unknown_reason,
)


def test_static_types_from_rfc3551():
    assert clock_rate_hz(0) == 8000 and encoding_name(0) == "PCMU"
    assert clock_rate_hz(9) == 8000  # G.722's famous RFC 3551 §4.5.2 clock
    assert clock_rate_hz(34) == 90000 and encoding_name(34) == "H263"


def test_dynamic_type_needs_rtpmap():
    assert clock_rate_hz(111) is None
    assert "without an SDP rtpmap" in (jitter_unknown_reason(111) or "")
    rtpmap = {111: ("opus", 48000), 101: ("telephone-event", 8000)}
    assert clock_rate_hz(111, rtpmap) == 48000 and encoding_name(111, rtpmap) == "opus"
    # RFC 4733 §2.2.1: an event's timestamp does not advance, so no jitter from it.
    assert clock_rate_hz(101, rtpmap) is None
    assert "telephone-event" in (jitter_unknown_reason(101, rtpmap) or "")
    assert jitter_unknown_reason(111, rtpmap) is None


def test_override_beats_static_and_unassigned_is_unknown():
    assert clock_rate_hz(0, {0: ("PCMU", 16000)}) == 16000
    assert clock_rate_hz(20) is None and "unassigned" in (jitter_unknown_reason(20) or "")


def test_kernel_table():
    table = clock_table_hz({96: ("H264", 90000)})
    assert table.shape == (128,)
    assert table[8] == 8000 and table[96] == 90000 and table[97] == 0
