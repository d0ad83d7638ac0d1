"""Real calls with known impairments and a known speech schedule, made by sipp inside
network namespaces this test creates, captured with dumpcap:

- netem (or, on kernels without it, a user-space relay that does the same) drops and
  delays the caller's RTP (only the RTP port, so SIP is untouched): the
  measured loss and jitter match what netem was told, tshark agrees packet for packet,
  and the MOS falls;
- the relay drops in runs (netem's Gilbert model): the loss runs and G.107's burst ratio
  are measured as made, and the MOS falls below random loss's at the same rate;
- a spoken call (espeak-ng phrases at known times, G.711 with and without DTX): the talk
  spurts are found within 100 ms of the truth read from the audio.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.test_rtp_streams_vs_tshark import parse_rtp_streams
from tests.realtraffic.media import (
    have,
    in_ns,
    netem_available,
    netem_on_rtp,
    netns_pair,
    nft_loss_on_rtp,
    relay_jitter_on_rtp,
    run,
    spoken_call,
    write_rtp_pcap,
)
from voipscope.api import iter_calls
from voipscope.quality.emodel import measured_burst_ratio, mos

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not have("sipp", "dumpcap", "ip", "tc", "tshark"),
    reason="needs root, sipp (apt sip-tester), dumpcap, tshark, ip and tc",
)

SIPP_PCAPS = Path("/usr/share/sip-tester")  # Debian's sip-tester ships the DTMF pcaps
SPOKEN_SSRC = "0x5EED5EED"  # write_rtp_pcap's
LOSS_PCT = 10.0
DELAY_MS, JITTER_MS = 40, 10
# netem's jitter is uniform in ±JITTER_MS: transit differences of two packets follow a
# triangle on ±2·JITTER_MS, whose mean absolute value, JITTER_MS·2/3, is what the RFC 3550
# A.8 estimator converges to.
EXPECTED_JITTER_MS = JITTER_MS * 2 / 3
TOLERANCE_S = 0.100


def sipp_call(
    workdir: Path, ns_uac: str, ns_uas: str, uac_ip: str, uas_ip: str, capture_ns: str,
    capture_dev: str, seconds: float, sdp_media: str | None = None,
) -> Path:  # fmt: skip
    """One uac_pcap call (plays workdir/pcap/g711a.pcap) to a sipp UAS; the capture.
    ``sdp_media``: the offer's m= and a=rtpmap lines instead of sipp's PCMA ones."""
    capture = workdir / "call.pcapng"
    # sipp's own uac_pcap scenario, paused for as long as our audio plays (it pauses 8 s,
    # the length of its sample) before the DTMF digit and the BYE.
    scenario = subprocess.run(
        ["sipp", "-sd", "uac_pcap"], capture_output=True, text=True, check=False
    ).stdout
    assert '<pause milliseconds="8000"/>' in scenario, "sipp -sd uac_pcap changed"
    scenario = scenario.replace(
        '<pause milliseconds="8000"/>', f'<pause milliseconds="{int(seconds * 1000) + 500}"/>'
    )
    if sdp_media is not None:
        pcma = "m=audio [auto_media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n"
        assert pcma in scenario, "sipp -sd uac_pcap changed"
        scenario = scenario.replace(pcma, sdp_media)
    (workdir / "uac_pcap.xml").write_text(scenario)
    # uac_pcap plays pcap/g711a.pcap (ours) and then an RFC 2833 digit from sipp's files.
    for pcap in SIPP_PCAPS.glob("dtmf_*.pcap"):
        target = workdir / "pcap" / pcap.name
        if not target.exists():
            target.symlink_to(pcap)
    dumpcap = subprocess.Popen(
        in_ns(capture_ns, "dumpcap", "-q", "-i", capture_dev, "-a", f"duration:{seconds + 15:.0f}",
            "-w", str(capture)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uas = None
    try:
        time.sleep(1.0)
        uas = subprocess.Popen(
            in_ns(ns_uas, "sipp", "-sn", "uas", "-i", uas_ip, "-p", "5060", "-mp", "6000",
                "-m", "1", "-timeout", f"{seconds + 20:.0f}s", "-nostdin"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
        )  # fmt: skip
        time.sleep(0.5)
        uac = subprocess.run(
            in_ns(ns_uac, "sipp", "-sf", "uac_pcap.xml", f"{uas_ip}:5060", "-i", uac_ip,
                "-p", "5062", "-mp", "6100", "-m", "1", "-timeout", f"{seconds + 20:.0f}s",
                "-nostdin"),
            capture_output=True, timeout=seconds + 40, cwd=workdir, check=False,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-500:]
        uas.wait(timeout=30)
        time.sleep(0.5)
    finally:
        if uas is not None and uas.poll() is None:
            uas.kill()
        dumpcap.terminate()
        dumpcap.wait(timeout=10)
    return capture


def the_stream(capture: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (call,) = [c for c in iter_calls(capture) if c["kind"] == "call"]
    streams = [s for s in call["streams"] if s["ssrc"] == SPOKEN_SSRC]
    assert len(streams) == 1, call["streams"]
    return call, streams[0]


def impaired_call(tmp_path: Path, impair) -> tuple[dict[str, Any], dict[str, Any], int, Path]:  # type: ignore[no-untyped-def]
    seconds = 20.0
    audio = np.random.default_rng(5).normal(0, 3000, int(seconds * 8000))
    sent = write_rtp_pcap(tmp_path / "pcap" / "g711a.pcap", audio)
    with netns_pair() as (ns_a, ns_b, ip_a, ip_b, dev_a):
        stop = impair(ns_a, dev_a, ip_a, ip_b)
        dev_b = "vb" + dev_a[2:]
        try:
            capture = sipp_call(tmp_path, ns_a, ns_b, ip_a, ip_b, ns_b, dev_b, seconds)
        finally:
            if stop is not None:
                print(stop())  # the relay's counts, shown with -s
    call, stream = the_stream(capture)
    assert call["state"] == "answered"
    # What was configured, within binomial noise (sd ~0.95 points at 1000 packets).
    assert abs(stream["loss_pct"] - LOSS_PCT) <= 3.5, stream
    assert stream["packets"] + stream["lost"] <= sent  # lost at the very end: not seen
    # tshark on the same capture: the same packets, losses and (within 5 %) jitter.
    text = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-q", "-z", "rtp,streams"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    theirs = [v for k, v in parse_rtp_streams(text).items() if k[4] == int(SPOKEN_SSRC, 16)]
    assert len(theirs) == 1, text
    assert (stream["packets"], stream["lost"]) == (theirs[0].packets, theirs[0].lost)
    assert abs(stream["jitter_ms"] - theirs[0].mean_jitter_ms) <= max(
        0.05 * theirs[0].mean_jitter_ms, 0.1
    )
    clean = mos("PCMA", 0.0).mos
    assert stream["mos"] is not None and clean is not None
    assert stream["mos"] < clean - 0.5, (stream["mos"], clean)  # 10 % loss costs ~1 MOS
    print(  # shown with -s: the figures behind the verdict
        f"sent {sent}, received {stream['packets']}, lost {stream['lost']} "
        f"({stream['loss_pct']:.2f} %), jitter {stream['jitter_ms']:.2f} ms, "
        f"MOS {stream['mos']:.2f} (clean {clean:.2f}); tshark {theirs[0]}"
    )
    return call, stream, sent, capture


def test_netem_loss_and_jitter_are_measured_and_mos_falls(tmp_path: Path) -> None:
    if not netem_available():
        pytest.skip("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set)")
    _, stream, _, _ = impaired_call(
        tmp_path,
        lambda ns, dev, _a, _b: netem_on_rtp(
            ns, dev, loss_pct=LOSS_PCT, delay_ms=DELAY_MS, jitter_ms=JITTER_MS
        ),
    )
    assert abs(stream["jitter_ms"] - EXPECTED_JITTER_MS) <= 2.5, stream


@pytest.mark.skipif(not have("nft"), reason="needs nft (apt nftables)")
def test_relay_loss_and_jitter_are_measured_and_mos_falls(tmp_path: Path) -> None:
    """The netem test's impairment made in user space (tests/realtraffic/jitter_relay.py:
    the caller's RTP redirected by nftables into a relay that drops LOSS_PCT and delays
    each datagram by DELAY_MS ± JITTER_MS, uniform, as netem does), so the jitter half of
    the check runs on kernels without sch_netem too."""
    _, stream, _, _ = impaired_call(
        tmp_path,
        functools.partial(
            relay_jitter_on_rtp, loss_pct=LOSS_PCT, delay_ms=DELAY_MS, jitter_ms=JITTER_MS
        ),
    )
    assert abs(stream["jitter_ms"] - EXPECTED_JITTER_MS) <= 2.5, stream


@pytest.mark.skipif(not have("nft"), reason="needs nft (apt nftables)")
def test_nftables_loss_is_measured_and_mos_falls(tmp_path: Path) -> None:
    _, stream, _, _ = impaired_call(
        tmp_path, lambda ns, dev, _a, _b: nft_loss_on_rtp(ns, dev, loss_pct=LOSS_PCT)
    )
    assert stream["jitter_ms"] < 2.0  # a veth pair adds no jitter worth the name


# Gilbert model: go bad with 3 %, good again with 30 % per packet: 9.1 % loss in runs of
# 3.3 packets on average, G.107 burst ratio 1 / (P + R) = 3.03.
GILBERT_P, GILBERT_R = 0.03, 0.3


def _loss_runs_in(capture: Path) -> tuple[int, int, int, int]:
    """(expected, lost, runs of missing numbers on the wire, numbers missing across a
    capture gap) of the spoken stream, from tshark's sequence numbers and frame times:
    the count made without voipscope. A run is the capture's, not the wire's, when
    nothing at all was captured for >= 0.5 s around it (docs/calls.md: with only one
    RTP direction on the link, a long enough run of drops is one)."""
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(capture), "-T", "fields", "-e", "frame.time_epoch",
         "-e", "rtp.ssrc", "-e", "rtp.seq"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split("\t") for line in fields.splitlines()]
    frames = sorted(float(r[0]) for r in rows)
    mine = [(float(r[0]), int(r[2])) for r in rows if r[1] == SPOKEN_SSRC.lower()]
    seqs = [seq for _, seq in mine]
    assert seqs == sorted(seqs), "no wrap or reordering expected on this path"
    runs = gap_missing = 0
    for (t0, a), (t1, b) in itertools.pairwise(mine):
        if b - a <= 1:
            continue
        between = bisect.bisect_right(frames, t0) < bisect.bisect_left(frames, t1)
        if t1 - t0 >= 0.5 and not between:
            gap_missing += b - a - 1
        else:
            runs += 1
    expected = seqs[-1] - seqs[0] + 1
    return expected, expected - len(seqs), runs, gap_missing


@pytest.mark.skipif(not have("nft"), reason="needs nft (apt nftables)")
def test_bursty_loss_is_measured_as_runs_and_a_burst_ratio(tmp_path: Path) -> None:
    """The same rate of loss, in runs (the relay's Gilbert model) and at random: each
    call's loss runs equal the ones tshark's sequence numbers show and the relay made,
    its burst ratio is the model's, and the bursty call's MOS is below what random loss
    at its own rate would give."""
    seconds = 16.0
    audio = np.random.default_rng(7).normal(0, 3000, int(seconds * 8000))
    rate_pct = 100.0 * GILBERT_P / (GILBERT_P + GILBERT_R)
    found = {}
    for name, loss in (("bursty", {"burst_loss": (GILBERT_P, GILBERT_R)}), ("random", {})):
        workdir = tmp_path / name
        write_rtp_pcap(workdir / "pcap" / "g711a.pcap", audio)
        with netns_pair() as (ns_a, ns_b, ip_a, ip_b, dev_a):
            # No jitter: the relay keeps the order, so every run it drops is one hole.
            stop = relay_jitter_on_rtp(
                ns_a, dev_a, ip_a, ip_b, loss_pct=rate_pct, delay_ms=5, jitter_ms=0, **loss
            )
            try:
                dev_b = "vb" + dev_a[2:]
                capture = sipp_call(workdir, ns_a, ns_b, ip_a, ip_b, ns_b, dev_b, seconds)
            finally:
                counts = stop()
        print(name, counts)
        _, stream = the_stream(capture)
        expected, lost, runs, gap_missing = _loss_runs_in(capture)
        assert (stream["packets"] + stream["lost"], stream["lost"]) == (expected, lost)
        assert (stream["loss_runs"], stream["capture_gap_missing"]) == (runs, gap_missing)
        # The relay's own count: also runs cut off at either end of the stream (invisible
        # to RFC 3550's expected count), among sipp's RFC 4733 digit packets, and the
        # capture's gaps.
        made = int(re.search(r"runs (\d+)", counts)[1])  # type: ignore[index]
        assert made - 4 - (gap_missing > 0) <= runs <= made, counts
        on_wire = lost - gap_missing
        assert stream["burst_ratio"] == pytest.approx(measured_burst_ratio(on_wire, runs, expected))
        found[name] = stream | {"wire_loss_pct": 100.0 * on_wire / expected}
    bursty, random_ = found["bursty"], found["random"]
    for name, s in found.items():  # shown with -s
        print(name, s["wire_loss_pct"], s["loss_runs"], s["burst_ratio"], s["mos"])
    # ~800 packets, ~25 runs: the mean run length is known to about +-20 %.
    assert 2.0 <= bursty["burst_ratio"] <= 4.5, bursty
    assert 0.6 <= random_["burst_ratio"] <= 1.5, random_
    as_random = mos("PCMA", bursty["wire_loss_pct"]).mos
    assert as_random is not None and bursty["mos"] < as_random - 0.05, (bursty, as_random)
    assert not any("media outage" in e for e in the_stream(capture)[0]["evidence"])


@pytest.mark.skipif(not have("nft"), reason="needs nft (apt nftables)")
def test_a_fixed_dejitter_buffer_discards_what_the_jitter_makes_late(tmp_path: Path) -> None:
    """The relay delays each RTP datagram by 40 +- 40 ms (uniform, so 0-80 ms) and drops
    none: a fixed 50 ms de-jitter buffer, playing each packet 50 ms after the earliest it
    could come, loses those delayed by more than 50 ms -- 30 of every 80 ms of the
    spread, 37.5 % -- and a 200 ms buffer none; the MOS with those discards falls, the
    network's does not."""
    seconds = 16.0
    audio = np.random.default_rng(9).normal(0, 3000, int(seconds * 8000))
    write_rtp_pcap(tmp_path / "pcap" / "g711a.pcap", audio)
    with netns_pair() as (ns_a, ns_b, ip_a, ip_b, dev_a):
        stop = relay_jitter_on_rtp(ns_a, dev_a, ip_a, ip_b, loss_pct=0.0, delay_ms=40, jitter_ms=40)
        try:
            dev_b = "vb" + dev_a[2:]
            capture = sipp_call(tmp_path, ns_a, ns_b, ip_a, ip_b, ns_b, dev_b, seconds)
        finally:
            print(stop())
    _, stream = the_stream(capture)
    late_share = stream["jb50_late"] / stream["packets"]
    print(stream["packets"], stream["lost"], stream["jb50_late"], stream["jb200_late"],
          stream["mos"], stream["mos_jb50"], stream["mos_jb200"])  # fmt: skip
    assert stream["lost"] == 0 and stream["out_of_order"] > 0  # reordered, none lost
    # ~800 packets: the binomial spread of the share is ~1.7 points.
    assert abs(late_share - 30 / 80) <= 0.06, stream
    assert stream["jb200_late"] == 0
    assert stream["mos"] == stream["mos_jb200"] == pytest.approx(mos("PCMA", 0.0).mos)
    assert stream["mos_jb50"] == pytest.approx(mos("PCMA", 100 * late_share).mos)
    assert stream["mos_jb50"] < stream["mos"] - 1.0  # a third of the packets gone


@pytest.mark.skipif(not have("espeak-ng"), reason="needs espeak-ng (apt espeak-ng)")
@pytest.mark.parametrize("dtx", [False, True], ids=["continuous", "dtx"])
def test_talk_spurts_of_a_spoken_call(tmp_path: Path, dtx: bool) -> None:
    phrases = [
        (0.8, "Hello, this is the network operations centre."),
        (5.5, "Please confirm the trunk is up."),
        (9.8, "Thank you."),
    ]
    audio, truth = spoken_call(phrases, 12.5, tmp_path)
    sent = write_rtp_pcap(tmp_path / "pcap" / "g711a.pcap", audio, truth if dtx else None)
    name = f"vst-{os.getpid()}-{int(dtx)}"
    run("ip", "netns", "add", name)
    try:
        run(*in_ns(name, "ip", "link", "set", "lo", "up"))
        capture = sipp_call(tmp_path, name, name, "127.0.0.1", "127.0.0.1", name, "lo", 12.5)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    call, stream = the_stream(capture)
    assert call["state"] == "answered" and call["caller"].startswith("sip:sipp@")
    # sipp's UAS sends no RTP although its answer announced two-way audio.
    one_way = [e for e in call["evidence"] if e.startswith("one-way media")]
    assert [e.split(" for ")[0] for e in one_way] == [
        "one-way media: only 127.0.0.1:6100 -> 127.0.0.1:6000"
    ], call["evidence"]
    assert (stream["packets"], stream["lost"], stream["duplicates"]) == (sent, 0, 0)
    assert stream["pairing"] == "sdp-address"
    # sipp sends the digit 1 as RFC 2833/4733 events after the speech.
    digits = [d["digit"] for s in call["streams"] for d in s["dtmf"]]
    assert digits == ["1"], call["streams"]
    spurts = stream["talk_spurts"]
    # The capture time of audio time 0: the first packet carries frame 0, or with DTX
    # the first frame of the first phrase (as write_rtp_pcap chose it).
    first_frame = 0
    if dtx:
        first_frame = next(k for k in range(10_000) if truth[0][0] - 0.02 <= k * 0.02)
    start = stream["first_seen"] - first_frame * 0.02
    found = [(s - start, e - start) for s, e in spurts]
    assert len(found) == len(truth), (found, truth)
    for (s, e), (ts, te) in zip(found, truth, strict=True):
        assert abs(s - ts) <= TOLERANCE_S and abs(e - te) <= TOLERANCE_S, (found, truth)
