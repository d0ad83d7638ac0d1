"""Flow-record input against a real exporter: softflowd exports shared captures as NetFlow
v5, v9 and IPFIX (and IPFIX biflows) to a UDP receiver on 127.0.0.1; voipscope reads the
received datagrams and must count every 5-tuple's packets and bytes as softflowd did and
as voipscope's own packet pipeline does on the same capture.

The receiver is a separate small process (RECEIVER below) that writes the datagrams to a
pcap and exits when told (or after 5 quiet seconds). softflowd 1.1.0 never ends when its
control socket path (-c) is longer than 12 characters (measured: /tmp/fx/ab/c works,
/tmp/fx/abcd/c hangs after "starting data collection"), so it runs in the work directory
with the relative paths "ctl" and "pid". Nothing is sent anywhere but 127.0.0.1.

``python tests/integration/test_flow_records.py`` prints the evaluation of media verdicts
from flow records alone against tests/expected/labels (docs/flow_records.md).
"""

from __future__ import annotations

import csv
import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "captures" / "ndpi"
LABELS = REPO / "tests" / "expected" / "labels"
SOFTFLOWD = shutil.which("softflowd") or (
    "/usr/sbin/softflowd" if Path("/usr/sbin/softflowd").exists() else None
)
CAPTURES = ("sip.pcap", "rtp.pcapng", "discord.pcap", "teams.pcap",
            "whatsapp_voice_and_message.pcap")  # fmt: skip
# One flow per 5-tuple in all three: softflowd's timeouts far above the captures' gaps,
# and the packet pipeline's and the record merger's as long.
LONG_S = 86_400
SOFTFLOWD_TIMEOUTS = [
    arg
    for name in ("udp", "tcp", "general", "tcp.fin", "tcp.rst", "icmp")
    for arg in ("-t", f"{name}={LONG_S}")
]
EXPORTS = {"v5": ["-v", "5"], "v9": ["-v", "9"], "ipfix": ["-v", "10", "-A", "milli"],
           "ipfix-biflow": ["-v", "10", "-b", "-A", "milli"]}  # fmt: skip

RECEIVER = r"""
import socket, struct, sys, time
out, quiet_s = sys.argv[1], float(sys.argv[2])
STOP = b"voipscope-receiver-stop"
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
sock.settimeout(quiet_s)
port = sock.getsockname()[1]
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # raw IP
    while True:
        try:
            data, (host, sport) = sock.recvfrom(65535)
        except socket.timeout:
            break
        if data == STOP:
            break
        now = time.time()
        udp = struct.pack("!HHHH", sport, port, 8 + len(data), 0) + data
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         socket.inet_aton(host), socket.inet_aton("127.0.0.1")) + udp
        f.write(struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(ip), len(ip)) + ip)
"""

needs_softflowd = pytest.mark.skipif(SOFTFLOWD is None, reason="softflowd is not installed "
                                     "(apt-get install softflowd)")  # fmt: skip


def export_with_softflowd(capture: Path, export: str, workdir: Path) -> tuple[Path, str]:
    """softflowd's export of ``capture`` as received on 127.0.0.1: a pcap of the
    datagrams, and softflowd's own statistics (its stdout)."""
    assert SOFTFLOWD is not None
    receiver_py = workdir / "receiver.py"
    receiver_py.write_text(RECEIVER)
    received = workdir / f"{capture.stem}-{export}.pcap"
    receiver = subprocess.Popen(
        [sys.executable, str(receiver_py), str(received), "5.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        run = subprocess.run(
            [SOFTFLOWD, "-d", "-r", str(capture), "-n", f"127.0.0.1:{port}",
             *EXPORTS[export], *SOFTFLOWD_TIMEOUTS, "-c", "ctl", "-p", "pid"],
            capture_output=True, text=True, timeout=60, cwd=workdir,
        )  # fmt: skip
        # softflowd has sent everything: tell the receiver (it also stops after 5 quiet s).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stop:
            stop.sendto(b"voipscope-receiver-stop", ("127.0.0.1", port))
        receiver.wait(timeout=30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    assert run.returncode == 0, run.stderr
    return received, run.stdout + run.stderr


def softflowd_totals(report: str) -> tuple[int, dict[int, tuple[int, int]]]:
    """Records exported, and (octets, packets) per IP protocol, from softflowd's report."""
    records = int(re.search(r"Flows exported: \d+ \((\d+) records\)", report).group(1))  # type: ignore[union-attr]
    per_proto = {
        int(m.group(1)): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"\w+ \((\d+)\):\s+(\d+)\s+(\d+)", report)
    }
    return records, per_proto


def by_five_tuple(rows: list[dict]) -> dict[tuple, Counter]:
    """Packets and bytes per unordered 5-tuple, per endpoint direction (summed over
    records of the same 5-tuple)."""
    out: dict[tuple, Counter] = defaultdict(Counter)
    for r in rows:
        if r["proto"] not in ("udp", "tcp"):
            continue
        a, b = (r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])
        key = (r["proto"], *sorted([a, b]))
        forward = a == key[1]
        out[key]["pkts_lo" if forward else "pkts_hi"] += r["src2dst_packets"]
        out[key]["pkts_hi" if forward else "pkts_lo"] += r["dst2src_packets"]
        out[key]["bytes_lo" if forward else "bytes_hi"] += r["src2dst_bytes"]
        out[key]["bytes_hi" if forward else "bytes_lo"] += r["dst2src_bytes"]
    return out


def trailer_bytes(capture: Path) -> dict[tuple, Counter]:
    """Bytes after the IP packet in each frame (Ethernet padding of short frames), per
    5-tuple direction as ``by_five_tuple`` keys them. softflowd counts a packet as the
    captured bytes after the link header, padding included; voipscope (like nfdump's
    nfpcapd and SiLK) counts the IP total length."""
    from voipscope.addresses import format_ip
    from voipscope.decode import decode_batch
    from voipscope.decode import status as S
    from voipscope.source import read_capture

    out: dict[tuple, Counter] = defaultdict(Counter)
    for batch in read_capture(str(capture)):
        d = decode_batch(batch)
        end = batch.data_offset + batch.caplen
        extra = end - d.l3_off - d.ip_bytes
        for i in np.flatnonzero((d.status == S.OK) & (extra > 0) & np.isin(d.proto, (6, 17))):
            v = int(d.ip_ver[i])
            a = (format_ip(v, int(d.src_hi[i]), int(d.src_lo[i])), int(d.sport[i]))
            b = (format_ip(v, int(d.dst_hi[i]), int(d.dst_lo[i])), int(d.dport[i]))
            key = ("tcp" if d.proto[i] == 6 else "udp", *sorted([a, b]))
            out[key]["bytes_lo" if a == key[1] else "bytes_hi"] += int(extra[i])
    return out


@pytest.fixture(scope="module")
def workdir():  # type: ignore[no-untyped-def]
    path = Path(tempfile.mkdtemp(prefix="voipscope-softflowd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_softflowd
@pytest.mark.parametrize("export", list(EXPORTS))
@pytest.mark.parametrize("name", CAPTURES)
def test_records_count_what_softflowd_and_the_packet_pipeline_count(
    name: str, export: str, workdir: Path
) -> None:
    import json

    from voipscope.api import read_flow_records, read_flows

    capture = SHARED / name
    if not capture.exists():
        pytest.skip(f"{capture} is not here (../shared/captures)")
    received, report = export_with_softflowd(capture, export, workdir)
    table = read_flow_records(str(received), export_pcap=True, merge_idle_timeout_s=LONG_S)
    stats = json.loads(table.schema.metadata[b"voipscope.stats"])
    assert not [a for a in stats["anomalies"] if a.endswith("sequence_gap")], stats
    assert stats["export"]["sets_without_template"] == 0
    rows = table.to_pylist()

    # softflowd's own accounting: its records, and its per-protocol packet/byte totals.
    records, per_proto = softflowd_totals(report)
    assert stats["export"]["flow_records"] == records
    for proto, (octets, packets) in per_proto.items():
        mine = [r for r in rows if r["proto"] == {6: "tcp", 17: "udp", 1: "icmp"}.get(proto)]
        if proto in (6, 17):
            assert sum(r["src2dst_packets"] + r["dst2src_packets"] for r in mine) == packets
            assert sum(r["src2dst_bytes"] + r["dst2src_bytes"] for r in mine) == octets

    # The packet pipeline on the same capture, timeouts as long as softflowd's.
    packets = read_flows(str(capture), idle_timeout_s=LONG_S, active_timeout_s=0).to_pylist()
    if export == "v5":  # NetFlow v5 has no IPv6 records
        packets = [r for r in packets if r["ip_version"] == 4]
    expected = by_five_tuple(packets)
    for key, padding in trailer_bytes(capture).items():
        if key in expected:
            expected[key].update(padding)
    assert by_five_tuple(rows) == expected


@needs_softflowd
def test_rtp_of_sip_pcap_is_media_from_flow_features(workdir: Path) -> None:
    from voipscope.api import read_flow_records

    received, _ = export_with_softflowd(SHARED / "sip.pcap", "ipfix-biflow", workdir)
    flows = read_flow_records(str(received), export_pcap=True).to_pylist()
    media = {(f["src_port"], f["dst_port"]): f for f in flows if f["category"] == "voip-media"}
    assert (30000, 40392) in media  # the RTP stream
    rtp = media[(30000, 40392)]
    assert (rtp["media"], rtp["protocol"], rtp["detected_at_packet"]) == ("audio", None, None)
    assert rtp["evidence"][0].startswith("voice-like pacing")
    assert all(f["category"] != "other" for f in flows)
    # The IPFIX file of the same datagrams is found by its content, no flag needed.
    from voipscope.source import read_capture
    from voipscope.source.flow_export import is_ipfix_file

    ipfix_file = workdir / "sip.ipfix"
    with ipfix_file.open("wb") as f:
        for batch in read_capture(str(received)):
            for off, n in zip(batch.data_offset.tolist(), batch.caplen.tolist(), strict=True):
                f.write(bytes(batch.buf[off + 28 : off + n]))  # past IPv4 + UDP headers
    assert is_ipfix_file(str(ipfix_file))
    assert len(read_flow_records(str(ipfix_file)).to_pylist()) == len(flows)


# -- evaluation (printed, not asserted) --------------------------------------------------------


def _label_key(proto: int, a: tuple[str, int], b: tuple[str, int]) -> tuple:
    ends = sorted([a, b], key=lambda e: (ipaddress.ip_address(e[0]), e[1]))
    return (proto, *ends)


def evaluate(export: str = "ipfix-biflow") -> None:
    """Precision and recall of voip-media from flow records alone over every labelled
    capture softflowd can read."""
    from voipscope.api import read_flow_records

    workdir = Path(tempfile.mkdtemp(prefix="voipscope-eval-"))
    tp = fp = fn = tn = 0
    misses: list[str] = []
    false_alarms: list[str] = []
    try:
        for label_file in sorted(LABELS.glob("*.csv")):
            capture = SHARED / label_file.name.removesuffix(".csv")
            if not capture.exists():
                continue
            received, _ = export_with_softflowd(capture, export, workdir)
            flows = read_flow_records(str(received), export_pcap=True).to_pylist()
            media = {
                _label_key(6 if f["proto"] == "tcp" else 17, (f["src_ip"], f["src_port"]),
                           (f["dst_ip"], f["dst_port"]))
                for f in flows if f["category"] == "voip-media"
            }  # fmt: skip
            with label_file.open() as f:
                for row in csv.DictReader(f):
                    key = _label_key(int(row["proto"]), (row["a_ip"], int(row["a_port"])),
                                     (row["b_ip"], int(row["b_port"])))  # fmt: skip
                    truth = row["category"] == "voip-media"
                    said = key in media
                    tp += truth and said
                    fp += said and not truth
                    fn += truth and not said
                    tn += not truth and not said
                    what = f"{capture.name} {key} {row['protocol']}/{row['app']}"
                    if truth and not said:
                        misses.append(what)
                    if said and not truth:
                        false_alarms.append(f"{what} (label {row['category']})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"export {export}: voip-media from flow records: TP {tp} FP {fp} FN {fn} TN {tn}")
    print(f"precision {precision:.1%} recall {recall:.1%} over {tp + fp + fn + tn} labelled flows")
    print(f"false alarms ({len(false_alarms)}):", *false_alarms, sep="\n  ")
    print(f"misses ({len(misses)}):", *misses[:40], sep="\n  ")


if __name__ == "__main__":
    evaluate(sys.argv[1] if len(sys.argv) > 1 else "ipfix-biflow")
