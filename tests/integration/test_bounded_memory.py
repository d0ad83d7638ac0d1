"""Peak RSS is bounded by live flows, not by the size of the capture (slow: ≥ 1 GB)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gen_capture import write_capture

RSS_LIMIT_MB = 300


def peak_rss_mb(args: list[str]) -> tuple[float, str]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, err
    return usage.ru_maxrss / 1024, err


@pytest.mark.slow
def test_rss_bounded_on_1gb_and_same_as_on_a_small_file(tmp_path: Path):
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    write_capture(small, 100e6)
    packets = write_capture(big, 1.05e9)
    assert big.stat().st_size >= 1e9
    out = tmp_path / "flows.parquet"
    cmd = [sys.executable, "-m", "voipscope", "flows", "--stats", "-o", str(out)]
    rss_small, _ = peak_rss_mb([*cmd, str(small)])
    rss_big, stats = peak_rss_mb([*cmd, str(big)])
    assert f'"packets": {packets}' in stats
    assert rss_big < RSS_LIMIT_MB, f"peak RSS {rss_big:.0f} MB on 1 GB"
    # Ten times the input, (almost) the same memory: nothing grows with the file.
    assert rss_big < rss_small * 1.25 + 20, (rss_small, rss_big)
