"""The block list writer of `voipscope live --blocklist`: which alerts list whom, the two
file formats, atomic rewrites, the allow-list, dedup, IPv6, and (where nft exists) that
the nft script passes ``nft -c -f``."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from voipscope.output.blocklist import (
    NFT_SET4,
    NFT_SET6,
    NFT_TABLE,
    BlockList,
    parse_networks,
)


def alert(src: str | None, kind: str = "sip-scan", severity: str = "high", **more: object):
    return {"kind": kind, "severity": severity, "src_ip": src, "ts": 1_790_000_000.0,
            "summary": "SIP scan of 40 hosts", **more}  # fmt: skip


def plain_addresses(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_offenders_of_blocking_kinds_at_or_above_the_severity(tmp_path: Path) -> None:
    bl = BlockList(tmp_path / "bl.txt", min_severity="medium")
    added = bl.add_alerts(
        [
            alert("192.0.2.10"),
            alert("192.0.2.11", severity="medium"),
            alert("192.0.2.12", severity="low"),  # below the floor
            alert("192.0.2.13", kind="policy"),  # a local rule broken, not an attacker
            alert("192.0.2.14", kind="skype-supernode"),  # src is a peer
            alert(None, kind="sip-flood"),  # a flood from many sources names nobody
            alert("not-an-address"),
        ]
    )
    assert added == ["192.0.2.10", "192.0.2.11"]
    assert plain_addresses(tmp_path / "bl.txt") == ["192.0.2.10", "192.0.2.11"]


def test_never_blocks_loopback_unspecified_multicast_broadcast_or_the_allow_list(
    tmp_path: Path,
) -> None:
    allowed = parse_networks("198.51.100.0/24, 2001:db8:1::/48,203.0.113.7")
    bl = BlockList(tmp_path / "bl.txt", never_block=allowed)
    never = ["127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
             "255.255.255.255", "198.51.100.99", "2001:db8:1::5", "203.0.113.7",
             "::ffff:127.0.0.1", "::ffff:198.51.100.1"]  # fmt: skip
    assert bl.add_alerts([alert(a) for a in never]) == []
    assert not (tmp_path / "bl.txt").exists()  # nothing listed, nothing written
    assert bl.add_alerts([alert("203.0.113.8")]) == ["203.0.113.8"]


def test_bad_allow_list_entry_is_named() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        parse_networks("10.0.0.0/8,not-a-net")


def test_dedup_and_ipv6_and_mapped_ipv4(tmp_path: Path) -> None:
    bl = BlockList(tmp_path / "bl.txt")
    assert bl.add_alerts([alert("2001:db8::1"), alert("2001:DB8:0::1")]) == ["2001:db8::1"]
    assert bl.add_alerts([alert("::ffff:192.0.2.1"), alert("192.0.2.1")]) == ["192.0.2.1"]
    assert bl.add_alerts([alert("2001:db8::1", kind="sip-bruteforce")]) == []
    # IPv4 first, then IPv6, each in address order.
    assert plain_addresses(tmp_path / "bl.txt") == ["192.0.2.1", "2001:db8::1"]


def test_plain_file_has_a_comment_with_kind_and_time_before_each_address(tmp_path: Path) -> None:
    path = tmp_path / "bl.txt"
    BlockList(path).add_alerts([alert("192.0.2.10", summary="scan\n10.0.0.1\x1b[31m")])
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# voipscope block list: 1 addresses")
    # Attacker-controlled text cannot add lines (an address line, a shell escape).
    assert lines[1] == "# 192.0.2.10 sip-scan high 2026-09-21T14:13:20Z: scan?10.0.0.1?[31m"
    assert lines[2:] == ["192.0.2.10"]


def test_a_restart_keeps_what_was_listed_and_drops_what_is_now_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bl.txt"
    BlockList(path).add_alerts([alert("192.0.2.10"), alert("198.51.100.5")])
    with path.open("a") as f:
        f.write("203.0.113.9\n")  # added by hand
    again = BlockList(path, never_block=parse_networks("198.51.100.0/24"))
    assert sorted(str(a) for a in again.entries) == ["192.0.2.10", "203.0.113.9"]
    assert again.entries[next(iter(again.entries))].kind == "sip-scan"
    assert again.add_alerts([alert("192.0.2.10")]) == []
    nft = BlockList(tmp_path / "bl.nft", "nft")
    nft.add_alerts([alert("2001:db8::7")])
    assert [str(a) for a in BlockList(tmp_path / "bl.nft", "nft").entries] == ["2001:db8::7"]


def test_the_list_is_capped(tmp_path: Path) -> None:
    logged: list[str] = []
    bl = BlockList(tmp_path / "bl.txt", max_entries=3, log=logged.append)
    added = bl.add_alerts([alert(f"192.0.2.{i}") for i in range(1, 10)])
    assert len(added) == 3 and bl.refused_full == 6 and len(logged) == 1


def test_rewrites_are_atomic_a_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bl.txt"
    bl = BlockList(path)
    bl.write()
    seen_bad: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            text = path.read_text()
            header = text.splitlines()[0]
            count = int(header.split(": ")[1].split()[0])
            if not text.endswith("\n") or len(plain_addresses(path)) < count:
                seen_bad.append(text)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(300):
            bl.add_alerts([alert(f"10.{i // 250}.{i % 250}.1")])
    finally:
        done.set()
        thread.join()
    assert not seen_bad
    assert len(plain_addresses(path)) == 300
    assert [p.name for p in tmp_path.iterdir()] == ["bl.txt"]  # no temporary files left
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_nft_script_refreshes_one_table_with_two_sets(tmp_path: Path) -> None:
    path = tmp_path / "bl.nft"
    BlockList(path, "nft").add_alerts([alert("192.0.2.10"), alert("2001:db8::1")])
    text = path.read_text()
    assert text.startswith("#!/usr/sbin/nft -f\n")
    assert f"flush set {NFT_TABLE} {NFT_SET4}" in text
    assert f"add element {NFT_TABLE} {NFT_SET4} {{ 192.0.2.10 }}" in text
    assert f"add element {NFT_TABLE} {NFT_SET6} {{ 2001:db8::1 }}" in text
    assert f"ip saddr @{NFT_SET4} counter drop" in text
    assert f"ip6 saddr @{NFT_SET6} counter drop" in text


def test_apply_needs_the_nft_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nft"):
        BlockList(tmp_path / "bl.txt", "plain", apply=True)


@pytest.mark.skipif(
    shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft (nftables) and root"
)
@pytest.mark.parametrize("addresses", [[], ["192.0.2.10"], ["2001:db8::1", "192.0.2.10"]])
def test_nft_script_passes_nft_check_mode(tmp_path: Path, addresses: list[str]) -> None:
    path = tmp_path / "bl.nft"
    bl = BlockList(path, "nft")
    bl.add_alerts([alert(a, summary='"; flush ruleset; #') for a in addresses])
    bl.write()
    # -c: parse and validate against the kernel without changing the ruleset, in a network
    # namespace of its own so not even the check touches the host's.
    unshare = ["unshare", "--net"] if shutil.which("unshare") else []
    done = subprocess.run([*unshare, "nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
