"""Inline verdict hooks offline (voipscope.inline): which events a hook is asked about, and
what each decision would have stopped, checked against tshark's own packet list."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.pcapbuild as pb
from tests.integration.test_alerts import SCANNER, sweep_capture
from voipscope.cli.main import sample_path
from voipscope.config import Config
from voipscope.errors import ConfigError
from voipscope.inline import Event, allow, drop, shape
from voipscope.inline.runner import inline_pipeline, iter_actions, load_hook

SHARED = Path(__file__).resolve().parents[3] / "shared" / "captures" / "ndpi"
CAPTURES = sorted(p for p in SHARED.glob("*") if not p.name.endswith(".out"))
FAX = SHARED / "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"
TSHARK = shutil.which("tshark")
needs_shared = pytest.mark.skipif(not FAX.exists(), reason=f"no shared captures in {SHARED}")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs tshark")


def _tshark_packets(path: Path) -> list[tuple[int, int, str, int, str, int]]:
    """(ts_ns, proto, src, sport, dst, dport) of every UDP/TCP packet, innermost headers
    (tunnels), as tshark reads the file; ICMP errors quote a UDP header but are not UDP."""
    fields = ["frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "udp.srcport",
              "udp.dstport", "tcp.srcport", "tcp.dstport"]  # fmt: skip
    cmd = [TSHARK or "tshark", "-r", str(path), "-Y", "not icmp and not icmpv6", "-T", "fields"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    packets = []
    for line in out.splitlines():
        c = [v.split(",")[-1] for v in line.split("\t")]
        seconds, _, fraction = c[0].partition(".")
        ts_ns = int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9])
        src, dst = c[1] or c[2], c[3] or c[4]
        if c[5]:
            packets.append((ts_ns, 17, src, int(c[5]), dst, int(c[6])))
        elif c[7]:
            packets.append((ts_ns, 6, src, int(c[7]), dst, int(c[8])))
    return packets


def _after(packets: list[tuple[int, int, str, int, str, int]], record: dict[str, Any],
           ttl_s: float) -> int:  # fmt: skip
    """Packets the action's targets match after it, counted from tshark's list. The
    record's ts is a float (µs at best), so the deciding packet is left out by a 1 µs
    margin."""
    start = round(record["ts"] * 1e9) + 1000
    end = start + int(ttl_s * 1e9)
    n = 0
    for ts, proto, src, sport, dst, dport in packets:
        if not start < ts <= end:
            continue
        for t in record["targets"]:
            if t["scope"] == "flow":
                ends = {(t["ip"], t["port"]), (t["peer_ip"], t["peer_port"])}
                hit = proto == t["proto"] and {(src, sport), (dst, dport)} == ends
            elif t["scope"] == "to":
                hit = proto == t["proto"] and (dst, dport) == (t["ip"], t["port"])
            else:
                hit = src == t["ip"]
            if hit:
                n += 1
                break
    return n


@needs_shared
@needs_tshark
def test_every_flow_decision_on_the_shared_captures_counts_what_tshark_sees() -> None:
    """Drop every VoIP flow for 30 s as soon as it is identified: on every shared capture,
    each action's packets_after is the number of packets tshark lists on that 5-tuple
    (either way) in the 30 s after the deciding packet -- later flows on the same
    5-tuple included, as a packet filter would drop them."""
    checked = 0
    for path in CAPTURES:
        records = list(
            iter_actions(path, lambda e: drop("test", ttl_s=30) if e.kind == "flow" else None)
        )
        if not records:
            continue
        packets = _tshark_packets(path)
        for record in records:
            assert record["event"] == "flow" and len(record["targets"]) == 1
            expected = _after(packets, record, 30)
            assert record["packets_after"] == expected, (path.name, record["subject"])
            checked += 1
    assert checked > 150  # 184 on the 77 captures when this was written


@needs_shared
@needs_tshark
def test_a_call_dropped_when_answered_covers_its_sdp_media() -> None:
    events: list[Event] = []

    def decide(event: Event) -> Any:
        events.append(event)
        if event.kind == "call" and event.stage == "answered":
            return drop("no calls to 061963177")
        return None

    records = list(iter_actions(FAX, decide))
    calls = [(e.stage, e.record["call_id"][:12]) for e in events if e.kind == "call"]
    # Two legs of one call (a B2BUA): each offered (INVITE), then answered (200).
    legs = ("00e9d4a500e9", "SD4909701-9f")
    assert sorted(calls) == sorted(
        (stage, leg) for stage in ("offered", "answered") for leg in legs
    )
    assert len(records) == 2
    by_leg = {r["call_id"][:12]: r for r in records}
    leg = by_leg["00e9d4a500e9"]
    targets = {(t["scope"], t["ip"], t["port"]) for t in leg["targets"]}
    # The offer's and the answer's m=audio endpoints and their RTCP ports (no rtcp-mux).
    assert targets == {("to", "10.23.1.52", 16756), ("to", "10.23.1.52", 16757),
                       ("to", "10.35.60.100", 15580), ("to", "10.35.60.100", 15581)}  # fmt: skip
    packets = _tshark_packets(FAX)
    for record in records:
        expected = _after(packets, record, 3600)
        assert (record["packets_after"], record["stage"]) == (expected, "answered")
    assert leg["packets_after"] == 1327  # the RTP and T.38 to those ports after the 200
    # The other leg's media is not in this capture (it was taken on the first leg).
    assert by_leg["SD4909701-9f"]["packets_after"] == 0


@needs_shared
def test_flow_and_call_events_do_not_depend_on_batching() -> None:
    """Events are made at the packet (or message) that makes them: a capture read in
    batches of 7 packets asks exactly what it asks read whole."""

    def events_of(batch_packets: int) -> list[tuple[Any, ...]]:
        seen: list[tuple[Any, ...]] = []

        def decide(e: Event) -> None:
            if e.kind != "alert":  # alerts are raised per batch (detect stage)
                seen.append((e.kind, e.stage, e.ts, e.subject, json.dumps(e.record, sort_keys=True),
                             e.targets))  # fmt: skip

        cfg = Config().with_value("source.batch_packets", batch_packets)
        for path in (FAX, SHARED / "sip.pcap", SHARED / "stun_dtls_rtp.pcapng"):
            list(iter_actions(path, decide, config=cfg))
        return seen

    whole = events_of(65536)
    assert len(whole) > 20
    assert sorted(events_of(7), key=repr) == sorted(whole, key=repr)


@needs_shared
def test_flow_events_name_the_verdict_and_change_with_it() -> None:
    events: list[Event] = []
    list(iter_actions(SHARED / "stun_dtls_rtp.pcapng", events.append))
    by_flow: dict[int, list[Event]] = {}
    for e in events:
        if e.kind == "flow":
            by_flow.setdefault(e.record["flow_id"], []).append(e)
    stages = {tuple((e.stage, e.record["category"], e.record["protocol"]) for e in flow)
              for flow in by_flow.values()}  # fmt: skip
    # STUN checks, then DTLS-SRTP keying, then SRTP media on one 5-tuple (RFC 7983): asked
    # when identified and again each time the verdict changed.
    assert (("identified", "voip-signaling", "STUN"), ("reidentified", "voip-media", "SRTP")) in {
        tuple(s for s in flow if s[0] == "identified" or s[2] == "SRTP") for flow in stages
    }
    for flow in by_flow.values():
        assert flow[0].stage == "identified"
        assert all(e.stage == "reidentified" for e in flow[1:])
        assert len(flow) <= 4
        assert all(e.record["confidence"] >= 0.5 for e in flow)


def test_an_alert_drop_targets_the_scanner(tmp_path: Path) -> None:
    """Asked at the OPTIONS that made the 10th destination (the detector's threshold),
    whatever the batches: the 20 requests after it are what the drop would stop."""
    sweep = sweep_capture(tmp_path / "sweep.pcap", hosts=30)
    for batch_packets in (1, 8, 65536):
        events: list[Event] = []

        def decide(e: Event, seen: list[Event] = events) -> Any:
            seen.append(e)
            return drop("scanner", ttl_s=600) if e.kind == "alert" else None

        cfg = Config().with_value("source.batch_packets", batch_packets)
        (record,) = iter_actions(sweep, decide, config=cfg)
        alerts = [(e.stage, e.record["kind"], e.record["count"]) for e in events
                  if e.kind == "alert"]  # fmt: skip
        assert alerts == [("raised", "sip-scan", 10)]  # later growth: under the decision
        scanner = {"scope": "from", "proto": None, "ip": SCANNER, "port": None,
                   "peer_ip": None, "peer_port": None}  # fmt: skip
        assert record["targets"] == [scanner]
        assert record["ts"] == pb_ts(9)
        assert record["packets_after"] == 20


def test_alert_escalation_and_expiry(tmp_path: Path) -> None:
    sweep = sweep_capture(tmp_path / "sweep.pcap", hosts=120)
    seen: list[tuple[str, str, int]] = []

    def watch(e: Event) -> None:
        if e.kind == "alert":
            seen.append((e.stage, e.record["severity"], e.record["count"]))

    list(iter_actions(sweep, watch))
    assert [s[:2] for s in seen] == [("raised", "medium"), ("escalated", "high")]

    # Two sweeps from the same source two hours apart, each dropped for 60 s: the
    # second is asked about again once the first decision has run out.
    from tests.integration.test_alerts import T0_S, options

    packets = [
        pb.udp_packet(T0_S + offset + i * 0.2, SCANNER, 5070, f"198.51.100.{i + 1}", 5060,
                      options(i, f"198.51.100.{i + 1}", "Linphone/5.2.0"))
        for offset in (0.0, 7200.0) for i in range(15)
    ]  # fmt: skip
    twice = tmp_path / "twice.pcap"
    twice.write_bytes(pb.pcap(packets))
    # One packet per batch: the detect stage ends a quiet alert between batches, so a
    # file read in one batch would merge the two sweeps (live, batches are 0.5 s).
    cfg = Config().with_value("source.batch_packets", 1)
    records = list(iter_actions(
        twice, lambda e: drop("x", ttl_s=60) if e.kind == "alert" else None, config=cfg
    ))  # fmt: skip
    assert [r["packets_after"] for r in records] == [5, 5]
    assert records[1]["ts"] - records[0]["ts"] == pytest.approx(7200.0)


def pb_ts(i: int) -> float:
    from tests.integration.test_alerts import T0_S

    return round((T0_S + i * 0.2) * 1e6) / 1e6


def test_ttl_ends_a_decision(tmp_path: Path) -> None:
    """A flow dropped for 1 s: only the packets of that second count."""
    rtp = [pb.udp_packet(1000.0 + i * 0.02, "192.0.2.1", 40000, "192.0.2.2", 40002, _rtp(i))
           for i in range(200)]  # fmt: skip
    path = tmp_path / "rtp.pcap"
    path.write_bytes(pb.pcap(rtp))
    for ttl, expected in ((1.0, 50), (None, None)):
        (record,) = iter_actions(
            path, lambda e, t=ttl: drop("x", ttl_s=t) if e.kind == "flow" else None
        )  # type: ignore[misc]
        first = record["ts"]
        assert first >= 1000.0
        after = sum(1 for i in range(200) if 1000.0 + i * 0.02 > first + 1e-6)
        assert record["packets_after"] == (after if expected is None else min(after, 50))


def _rtp(i: int) -> bytes:
    import struct

    # RTP v2, PCMU, sequence and timestamp advancing, one SSRC (RFC 3550 §5.1).
    return struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x1234ABCD) + bytes(160)


def test_shape_and_allow(tmp_path: Path) -> None:
    asked: list[str] = []

    def decide(e: Event) -> Any:
        asked.append(e.subject)
        if e.kind == "flow" and e.record["protocol"] == "SIP":
            return allow("signalling is fine")
        if e.kind == "flow":
            return shape(64, "hold media to 64 kbit/s")
        return None

    records = list(iter_actions(sample_path(), decide))
    assert records and all(r["action"] == "shape" and r["rate_kbit"] == 64 for r in records)
    assert {r["protocol"] for r in records} <= {"RTP", "RTCP"}
    assert any(s.startswith("call ") for s in asked)  # allow() does not stop the asking


def test_a_failing_hook_is_an_anomaly_not_a_crash() -> None:
    def decide(e: Event) -> Any:
        if e.kind == "flow":
            raise RuntimeError("bug in the policy")
        return "drop"  # not a Decision

    pipeline = inline_pipeline(decide)
    assert list(iter_actions(sample_path(), decide, pipeline=pipeline)) == []
    names = {a.name for a in pipeline.stats.anomalies.records}
    assert {"inline_hook_error", "inline_hook_bad_answer"} <= names
    assert pipeline.inline.hook_errors == pipeline.inline.events > 0


def test_decisions_are_checked() -> None:
    with pytest.raises(ValueError):
        shape(0)
    with pytest.raises(ValueError):
        drop(ttl_s=0)
    with pytest.raises(ValueError):
        drop(ttl_s=float("nan"))
    assert drop("x", ttl_s=None).ttl_s is None


def test_load_hook(tmp_path: Path) -> None:
    policy = tmp_path / "policy.py"
    policy.write_text("def decide(e):\n    return None\ndef other(e):\n    return None\n")
    assert load_hook(str(policy)).__name__ == "decide"
    assert load_hook(f"{policy}:other").__name__ == "other"
    assert load_hook("json:dumps") is json.dumps
    for bad in (str(tmp_path / "missing.py"), f"{policy}:nothing", "no_such_module_x:f"):
        with pytest.raises(ConfigError):
            load_hook(bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voipscope", "inline", *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture
def policy(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "policy.py"
    path.write_text(
        "from voipscope.inline import drop\n"
        "def decide(event):\n"
        "    if event.kind == 'flow' and event.record['protocol'] == 'RTP':\n"
        "        return drop('no RTP here')\n"
    )
    yield path


def test_cli_writes_action_records(policy: Path, tmp_path: Path) -> None:
    done = _cli("--sample", "--hook", str(policy), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["protocol"] for r in records] == ["RTP"]
    assert records[0]["packets_after"] > 0 and records[0]["capture"] == sample_path()
    assert "events asked, 1 actions" in done.stderr
    out = tmp_path / "actions.parquet"
    assert _cli("--sample", "--hook", str(policy), "-o", str(out)).returncode == 0
    import pyarrow.parquet as pq

    assert pq.read_table(out).column("packets_after").to_pylist() == [records[0]["packets_after"]]
    table = _cli("--sample", "--hook", str(policy), "--format", "table")
    assert "no RTP here" in table.stdout and "1 actions" in table.stdout


def test_cli_errors(policy: Path, tmp_path: Path) -> None:
    assert _cli("--sample", "--hook", str(tmp_path / "none.py")).returncode == 2
    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('a module the policy needs is missing')\n")
    done = _cli("--sample", "--hook", str(broken))
    assert done.returncode == 1 and "a module the policy needs is missing" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(sample_path()).read_bytes()[:5000])
    done = _cli(str(cut), "--hook", str(policy), "--format", "jsonl")
    assert done.returncode == 0, done.stderr  # a cut capture: what came before the cut
    assert "warning" in done.stderr


def _sip(first: str, cseq: str, sdp_port: int | None, sender: str, to_tag: bool) -> bytes:
    body = b""
    if sdp_port is not None:
        body = (f"v=0\r\no=- 1 1 IN IP4 {sender}\r\ns=-\r\nc=IN IP4 {sender}\r\nt=0 0\r\n"
                f"m=audio {sdp_port} RTP/AVP 0\r\n").encode()  # fmt: skip
    lines = [
        first,
        f"Via: SIP/2.0/UDP {sender}:5060;branch=z9hG4bK-{cseq.replace(' ', '-')}",
        "From: <sip:alice@192.0.2.1>;tag=a1",
        "To: <sip:bob@192.0.2.2>" + (";tag=b1" if to_tag else ""),
        "Call-ID: reinvite-1",
        f"CSeq: {cseq}",
        "Contact: <sip:x@192.0.2.1>",
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}" if body
        else "Content-Length: 0",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_media_a_dropped_call_announces_later_is_dropped_unasked(tmp_path: Path) -> None:
    """A re-INVITE moves the media to new ports after the call was dropped: the new
    endpoints join the decision (stage "media", follows the first action) without the
    hook being asked, and the RTP on them counts."""
    a, b = "192.0.2.1", "192.0.2.2"
    script = [
        (0.0, a, b, _sip("INVITE sip:bob@192.0.2.2 SIP/2.0", "1 INVITE", 4000, a, False)),
        (0.5, b, a, _sip("SIP/2.0 200 OK", "1 INVITE", 5000, b, True)),
        (0.6, a, b, _sip("ACK sip:bob@192.0.2.2 SIP/2.0", "1 ACK", None, a, True)),
        (2.0, a, b, _sip("INVITE sip:bob@192.0.2.2 SIP/2.0", "2 INVITE", 4010, a, True)),
        (2.1, b, a, _sip("SIP/2.0 200 OK", "2 INVITE", 5010, b, True)),
    ]
    packets = [pb.udp_packet(1000 + t, s, 5060, d, 5060, m) for t, s, d, m in script]
    # 20 RTP packets each way on the new ports after the re-INVITE's answer.
    for i in range(20):
        t = 1002.2 + i * 0.02
        packets.append(pb.udp_packet(t, a, 4010, b, 5010, _rtp(i)))
        packets.append(pb.udp_packet(t + 0.001, b, 5010, a, 4010, _rtp(i)))
    path = tmp_path / "reinvite.pcap"
    path.write_bytes(pb.pcap(sorted(packets, key=lambda p: p.ts_ns)))
    asked: list[tuple[str, str]] = []

    def decide(e: Event) -> Any:
        asked.append((e.kind, e.stage))
        return drop("no calls to bob") if e.kind == "call" and e.stage == "answered" else None

    first, offer, answer = iter_actions(path, decide)
    assert ("call", "answered") in asked and asked.count(("call", "answered")) == 1
    ports = {(t["ip"], t["port"]) for t in first["targets"]}
    assert ports == {(a, 4000), (a, 4001), (b, 5000), (b, 5001)}
    assert first["packets_after"] == 0  # no media on the first ports
    # The re-INVITE's offer and then its answer each bring their endpoints.
    for later, (ip, port) in ((offer, (a, 4010)), (answer, (b, 5010))):
        assert (later["stage"], later["follows"], later["action"]) == (
            "media", first["action_id"], "drop")  # fmt: skip
        assert {(t["ip"], t["port"]) for t in later["targets"]} == {(ip, port), (ip, port + 1)}
        assert later["packets_after"] == 20  # the RTP sent to that side


@needs_shared
@needs_tshark
def test_h323_and_iax2_calls_are_asked_too() -> None:
    """Calls of the other signalling protocols come through the same events: H.323 from
    its Setup/Connect (media as H.245 announces it), IAX2 from NEW/ANSWER (its media is
    its own flow)."""
    asked: list[Event] = []

    def decide(e: Event) -> Any:
        if e.kind == "call":
            asked.append(e)
            return drop("x") if e.stage == "answered" else None
        return None

    h323 = list(iter_actions(SHARED / "h323.pcap", decide))
    stages = sorted((e.record["protocol"], e.stage) for e in asked)
    assert stages == [("H.323", "answered"), ("H.323", "offered"), ("H.323", "offered"),
                      ("H.323", "offered")]  # fmt: skip
    offered = [e.record for e in asked if e.stage == "offered"]
    assert ("5295672", "9246526") in {(r["caller"], r["callee"]) for r in offered}
    # The answered call announced no media in this capture: nothing to drop yet.
    assert [(r["stage"], r["targets"], r["packets_after"]) for r in h323] == [("answered", [], 0)]

    asked.clear()
    (iax,) = iter_actions(SHARED / "iax.pcap", decide)
    assert [(e.record["protocol"], e.stage) for e in asked] == [("IAX2", "offered"),
                                                               ("IAX2", "answered")]  # fmt: skip
    assert (asked[0].record["caller"], asked[0].record["callee"]) == ("447782267949",
                                                                      "442088205155")  # fmt: skip
    assert iax["targets"] == [{"scope": "flow", "proto": 17, "ip": "82.110.36.84", "port": 4569,
                               "peer_ip": "192.168.2.120", "peer_port": 4566}]  # fmt: skip
    assert iax["packets_after"] == _after(_tshark_packets(SHARED / "iax.pcap"), iax, 3600) > 0


def test_late_decisions_count_the_rest_of_their_batch(tmp_path: Path) -> None:
    """Escalations are looked at after a batch has been counted: the packets after them
    in that batch still count, whatever the batch size (second review)."""
    from tests.integration.test_alerts import T0_S, options

    packets = [
        pb.udp_packet(T0_S + i * 0.2, SCANNER, 5070, f"198.51.100.{i + 1}", 5060,
                      options(i, f"198.51.100.{i + 1}", "Linphone/5.2.0"))
        for i in range(120)
    ] + [pb.udp_packet(T0_S + 24 + j * 0.01, SCANNER, 40000, "192.0.2.9", 9999, b"x" * 40)
         for j in range(50)]  # fmt: skip
    path = tmp_path / "escalating.pcap"
    path.write_bytes(pb.pcap(packets))

    def decide(e: Event) -> Any:
        return drop("x") if e.kind == "alert" and e.stage == "escalated" else None

    for batch_packets in (1, 64, 65536):
        cfg = Config().with_value("source.batch_packets", batch_packets)
        (record,) = iter_actions(path, decide, config=cfg)
        after = sum(1 for p in packets if p.ts_ns > round(record["ts"] * 1e9) + 1000)
        # Escalations are seen after a batch: the event's time is the alert's latest
        # evidence then (the 100th destination with one packet per batch, the 120th
        # with the whole file in one); what comes after it counts either way.
        assert record["packets_after"] == after == {1: 70, 64: 50, 65536: 50}[batch_packets]


def test_alerts_of_the_input_end_are_handed_out(tmp_path: Path) -> None:
    """A malformed-SIP storm is an alert the flood detector raises at the end of the
    input: its decision comes out with that input (second review)."""
    storm = [
        pb.udp_packet(1_700_000_000 + i * 0.03, "203.0.113.9", 20000 + i, "198.51.100.1", 5060,
                      b"OPTIONS sip:100@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP "
                      b"203.0.113.9:5062;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
                      b"Content-Length: 0\r\n\r\n")
        for i in range(150)
    ]  # fmt: skip
    path = tmp_path / "storm.pcap"
    path.write_bytes(pb.pcap(storm))

    def decide(e: Event) -> Any:
        return drop("x") if e.kind == "alert" else None

    records = list(iter_actions([path, sample_path()], decide))
    assert [(r["alert_kind"], Path(r["capture"]).name) for r in records] == [
        ("sip-flood", "storm.pcap")]  # fmt: skip


@needs_shared
def test_answered_is_asked_at_the_answer_only() -> None:
    """A call dropped when offered for 8 s is answered under the decision: after the
    decision ran out, a later message (the T.38 re-INVITE) is no "answered" (second
    review)."""
    asked: list[tuple[str, float]] = []

    def decide(e: Event) -> Any:
        if e.kind == "call":
            asked.append((e.stage, e.ts))
            return drop("x", ttl_s=8) if e.stage == "offered" else None
        return None

    records = list(iter_actions(FAX, decide))
    assert [stage for stage, _ in asked] == ["offered", "offered"]
    follows = [r for r in records if r["stage"] == "media"]
    assert follows and all(r["ttl_s"] < 8 for r in follows)  # they end with the first


def test_a_hook_cannot_change_a_call_record(tmp_path: Path) -> None:
    if not (SHARED / "iax.pcap").exists():
        pytest.skip("no shared captures")

    def meddle(e: Event) -> None:
        for endpoint in e.record.get("media_endpoints") or []:
            endpoint["meddled"] = True

    pipeline = inline_pipeline(meddle)
    calls = [c for kind, b in pipeline.run_all(str(SHARED / "iax.pcap")) if kind == "calls"
             for c in b]  # fmt: skip
    assert calls and not any("meddled" in m for c in calls
                             for m in c.get("media_endpoints") or [])  # fmt: skip
