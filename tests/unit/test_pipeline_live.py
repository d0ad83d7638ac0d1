"""FlowPipeline.run_live on batches made by hand (no socket): the clock a live source
carries ends idle flows and quiet calls on an idle link; the end of the capture flushes
everything; raised alerts come out while the attack goes on; files run as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests import pcapbuild as pb
from voipscope.config import Config
from voipscope.pipeline import FlowPipeline
from voipscope.source import CaptureInfo, PacketBatch, read_capture

T0 = 1_790_000_000.0
S = 1_000_000_000


class FakeLive:
    """Packet batches of a pcap, each followed by empty batches whose clock moves on,
    as source/live hands them over on an idle link."""

    def __init__(self, path: Path, idle_clocks_s: list[float]) -> None:
        self.info = CaptureInfo(path="live:fake", format="live")
        self.path = path
        self.idle_clocks_s = idle_clocks_s

    def batches(self) -> Iterator[PacketBatch]:
        for batch in read_capture(str(self.path)):
            batch.clock_ns = int(batch.ts_ns[-1])
            self.info.packets += len(batch)
            yield batch
        for clock_s in self.idle_clocks_s:
            empty = np.zeros(0, np.int64)
            yield PacketBatch(
                buf=np.zeros(0, np.uint8), data_offset=empty, caplen=empty, wirelen=empty,
                ts_ns=empty, linktype=empty, first_index=self.info.packets, file_offset=0,
                clock_ns=int(clock_s * S),
            )  # fmt: skip


def test_idle_flows_end_by_the_clock_and_the_rest_at_the_end(write_pcap) -> None:
    path = write_pcap(
        [
            pb.udp_packet(T0, "10.0.0.1", 4000, "10.0.0.2", 5004),
            pb.udp_packet(T0 + 0.5, "10.0.0.1", 4000, "10.0.0.2", 5004),
            pb.udp_packet(T0 + 9.0, "10.0.0.3", 4001, "10.0.0.2", 5004),
        ]
    )
    cfg = Config.from_overrides({"flows.idle_timeout_s": 5})
    live = FakeLive(path, [T0 + 12.0, T0 + 16.0, T0 + 40.0])
    seen = []
    for kind, payload in FlowPipeline(cfg).run_live(live):
        if kind == "flows":
            for flow in payload.to_pylist():  # type: ignore[union-attr]
                seen.append(f"{flow['src_ip']} {flow['end_reason']}")
    # The first flow went idle before the second began; the second ended by the clock
    # at T0 + 16 (idle 5 s after T0 + 9), not at the end of the capture.
    assert seen == ["10.0.0.1 idle", "10.0.0.3 idle"]
    assert live.info.packets == 3


def test_end_of_capture_flushes_open_flows(write_pcap) -> None:
    path = write_pcap([pb.udp_packet(T0, "10.0.0.1", 4000, "10.0.0.2", 5004)])
    live = FakeLive(path, [T0 + 1.0])
    out = list(FlowPipeline().run_live(live))
    flows = [f for kind, p in out if kind == "flows" for f in p.to_pylist()]  # type: ignore[union-attr]
    assert [f["end_reason"] for f in flows] == ["end-of-capture"]


def test_a_scan_is_raised_while_it_goes_on_and_final_at_the_end(write_pcap) -> None:
    # 12 INVITEs to 12 hosts from a scanner naming itself: sip-scan, high.
    packets = []
    for i in range(12):
        invite = (
            f"INVITE sip:100@10.0.1.{i + 1} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.66:5060;branch=z9hG4bK{i}\r\n"
            f"From: <sip:100@10.0.0.66>;tag={i}\r\nTo: <sip:100@10.0.1.{i + 1}>\r\n"
            f"Call-ID: scan{i}\r\nCSeq: 1 INVITE\r\nUser-Agent: friendly-scanner\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        packets.append(pb.udp_packet(T0 + i * 0.01, "10.0.0.66", 5060, f"10.0.1.{i + 1}", 5060,
                                     invite))  # fmt: skip
    live = FakeLive(write_pcap(packets), [T0 + 1.0])
    kinds = [(kind, p) for kind, p in FlowPipeline().run_live(live) if kind in ("raised", "alerts")]
    assert [k for k, _ in kinds] == ["raised", "alerts"]
    (raised,) = kinds[0][1]  # type: ignore[misc]
    assert raised["kind"] == "sip-scan" and raised["src_ip"] == "10.0.0.66"
    assert raised["severity"] == "high" and raised["ts"] == T0


def test_files_still_run_as_before(write_pcap) -> None:
    path = write_pcap([pb.udp_packet(T0, "10.0.0.1", 4000, "10.0.0.2", 5004)])
    batches = list(FlowPipeline().run_one(str(path)))
    assert len(batches) == 1 and batches[0].num_rows == 1
    kinds = [kind for kind, _ in FlowPipeline().run_all(str(path))]
    assert kinds == ["flows"]
