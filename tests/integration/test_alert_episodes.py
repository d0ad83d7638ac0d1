"""Alerts are episodes of an attack, whatever the batching: the same source attacking
again two hours later is a second alert with its own start, end and counts, and the
records are the same whether the capture is read in batches of 1, 7 or 65,536 packets
(the book closes an alert that went quiet at the evidence's time, not only when a batch
ends; the detectors start a source afresh after a quiet gap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pcapbuild as pb
from voipscope.config import Config, SourceConfig
from voipscope.pipeline import FlowPipeline

T0_S = 1_700_000_000.0
GAP_S = 7200.0  # between the two episodes; the alert book's quiet_s is 300 s
SCANNER, GUESSER, FLOODER, FUZZER = "203.0.113.5", "198.51.100.7", "192.0.2.9", "192.0.2.66"
SERVER, FLOODED = "10.0.0.1", "10.0.0.2"


def sip(first_line: str, headers: dict[str, str]) -> bytes:
    lines = [first_line, *(f"{k}: {v}" for k, v in headers.items()), "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def dialog_headers(src: str, user: str, call_id: str, method: str) -> dict[str, str]:
    return {
        "Via": f"SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{call_id}",
        "From": f"<sip:{user}@{SERVER}>;tag=f-{call_id}",
        "To": f"<sip:{user}@{SERVER}>",
        "Call-ID": call_id,
        "CSeq": f"1 {method}",
        "Max-Forwards": "70",
    }


def reply(status: str, request_headers: dict[str, str]) -> bytes:
    return sip(f"SIP/2.0 {status}", {**request_headers, "To": request_headers["To"] + ";tag=s"})


def episode(start_s: float, tag: str) -> list[pb.Packet]:
    """One episode of five attacks: a sweep (20 hosts), extension enumeration (30
    REGISTERs, half answered 404), password guessing (12 refused digests for 3 users),
    an OPTIONS flood (300 in 3 s) and a storm of malformed SIP (150 requests without
    their headers in 5 s, after one whole one)."""
    out = []
    for h in range(20):
        dst = f"10.1.{int(start_s) % 200}.{h + 1}"
        headers = dialog_headers(SCANNER, "100", f"scan-{tag}-{h}", "OPTIONS")
        out.append(pb.udp_packet(start_s + h * 0.1, SCANNER, 5070, dst, 5060,
                                 sip(f"OPTIONS sip:100@{dst} SIP/2.0", headers)))  # fmt: skip
    for k in range(30):
        user, call_id, t = str(100 + k), f"enum-{tag}-{k}", start_s + 5 + k * 0.2
        headers = dialog_headers(GUESSER, user, call_id, "REGISTER")
        out.append(pb.udp_packet(t, GUESSER, 5060, SERVER, 5060,
                                 sip(f"REGISTER sip:{SERVER} SIP/2.0", headers)))  # fmt: skip
        status = "404 Not Found" if k % 2 else "401 Unauthorized"
        out.append(pb.udp_packet(t + 0.01, SERVER, 5060, GUESSER, 5060,
                                 reply(status, headers)))  # fmt: skip
    for k in range(12):
        user, call_id, t = f"20{k % 3}", f"guess-{tag}-{k}", start_s + 20 + k * 0.5
        headers = dialog_headers(GUESSER, user, call_id, "REGISTER")
        headers["Authorization"] = (f'Digest username="{user}", realm="{SERVER}", nonce="n{k}", '
                                    f'uri="sip:{SERVER}", response="{k:032x}"')  # fmt: skip
        out.append(pb.udp_packet(t, GUESSER, 5060, SERVER, 5060,
                                 sip(f"REGISTER sip:{SERVER} SIP/2.0", headers)))  # fmt: skip
        out.append(pb.udp_packet(t + 0.01, SERVER, 5060, GUESSER, 5060,
                                 reply("403 Forbidden", headers)))  # fmt: skip
    for k in range(300):
        headers = dialog_headers(FLOODER, "300", f"flood-{tag}-{k}", "OPTIONS")
        out.append(pb.udp_packet(start_s + 40 + k * 0.01, FLOODER, 5060, FLOODED, 5060,
                                 sip(f"OPTIONS sip:300@{FLOODED} SIP/2.0", headers)))  # fmt: skip
    whole = dialog_headers(FUZZER, "400", f"fuzz-{tag}", "OPTIONS")
    out.append(pb.udp_packet(start_s + 49, FUZZER, 5062, SERVER, 5060,
                             sip(f"OPTIONS sip:400@{SERVER} SIP/2.0", whole)))  # fmt: skip
    for k in range(150):
        out.append(pb.udp_packet(start_s + 50 + k * 5 / 150, FUZZER, 5062, SERVER, 5060,
                                 sip(f"OPTIONS sip:{k}@{SERVER} SIP/2.0", {})))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    packets = episode(T0_S, "a") + episode(T0_S + GAP_S, "b")
    packets.sort(key=lambda p: p.ts_ns)
    path = tmp_path_factory.mktemp("episodes") / "two_episodes.pcap"
    path.write_bytes(pb.pcap(packets))
    return path


def alerts(path: Path, batch_packets: int) -> list[dict]:
    pipeline = FlowPipeline(Config(source=SourceConfig(batch_packets=batch_packets)))
    return [a for batch in pipeline.run_alerts(str(path)) for a in batch]


def summary(records: list[dict]) -> list[tuple]:
    return sorted((r["kind"], r["src_ip"], r["dst_ip"], r["ts"], r["last_ts"], r["count"])
                  for r in records)  # fmt: skip


def test_each_episode_is_its_own_alert(capture: Path) -> None:
    found = summary(alerts(capture, 65536))
    kinds = sorted({(kind, src) for kind, src, *_ in found})
    assert kinds == [("sip-bruteforce", GUESSER), ("sip-enumeration", GUESSER),
                     ("sip-flood", FUZZER), ("sip-flood", FLOODER),
                     ("sip-scan", SCANNER)]  # fmt: skip
    for kind, src in kinds:
        mine = [r for r in found if (r[0], r[1]) == (kind, src)]
        assert len(mine) == 2, (kind, mine)
        first, second = mine
        # Each starts and ends within its own episode (60 s of attacks) ...
        assert T0_S <= first[3] <= first[4] < T0_S + 60, first
        assert T0_S + GAP_S <= second[3] <= second[4] < T0_S + GAP_S + 60, second
        # ... and counts what happened in it: the second the same as the first.
        assert first[5] == second[5], (first, second)


@pytest.mark.parametrize("batch_packets", [1, 7])
def test_alerts_do_not_depend_on_batching(capture: Path, batch_packets: int) -> None:
    assert summary(alerts(capture, batch_packets)) == summary(alerts(capture, 65536))
