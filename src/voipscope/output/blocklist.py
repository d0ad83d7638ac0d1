"""Block lists from alerts: the attackers' addresses, in a file a firewall loads.

``voipscope live --blocklist FILE`` adds the ``src_ip`` of every alert at or above a
severity whose kind names the offender there (BLOCKING_KINDS), within seconds of the
alert being raised. The file is rewritten whole and atomically (a temporary file in the
same directory, then rename), so a reader sees the old list or the new one, never half.

Formats (docs/live.md):
- ``plain``: one address per line, each after a comment line
  ``# ADDRESS KIND SEVERITY TIME: SUMMARY`` (TIME is the alert's capture time, UTC).
- ``nft``: an nftables script for ``nft -f FILE`` that creates or refreshes table
  ``inet voipscope`` with the sets ``blocklist4`` (ipv4_addr) and ``blocklist6``
  (ipv6_addr; an nftables set holds one address family) and the chain ``prerouting``
  (filter hook prerouting, priority -300, before connection tracking) whose two rules drop
  packets from the sets. Loading it again replaces the sets' contents and the rules in one
  transaction; nothing outside the table is touched.

Alerts come from packets an attacker may forge: a spoofed SIP scan can name any source.
So: loopback, unspecified, multicast and broadcast addresses are never listed, the
``never_block`` networks (your trunks, your own servers) are never listed, and the list
holds at most ``max_entries`` addresses (DESIGN §4: attacker-controlled counts are capped).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEVERITIES = ("low", "medium", "high")  # as voipscope.detect.alerts (output must not import it)
FORMATS = ("plain", "nft")

# Alert kinds whose src_ip is the offender (what the detector that raises it puts there).
BLOCKING_KINDS: dict[str, str] = {
    "sip-scan": "the scanning source",
    "sip-enumeration": "the source walking extensions",
    "sip-bruteforce": "the source guessing passwords",
    "sip-flood": "the flooding source (only when one source made the flood)",
    "toll-fraud": "the caller placing the fraudulent calls",
    "spit": "the caller of the spam calls",
    "rtp-injection": "the sender of RTP into a call it is not part of",
    "tone-exfiltration": "the sender of the data tones",
    "vlan-hopping": "the sender of double-tagged frames",
}
# Not listed: policy (a phone breaking a local rule is not an attacker) and
# skype-supernode (src_ip is the supernode, a peer of the local user).

NFT_TABLE = "inet voipscope"
NFT_SET4 = "blocklist4"
NFT_SET6 = "blocklist6"
NFT_CHAIN = "prerouting"
NFT_PRIORITY = -300  # "raw": before conntrack, so dropped packets create no state
DEFAULT_MAX_ENTRIES = 65536
APPLY_TIMEOUT_S = 10.0
MAX_SUMMARY_CHARS = 160
_ENTRY_COMMENT = re.compile(r"^# (\S+) (\S+) (low|medium|high) (\S+): ?(.*)$")
_UNPRINTABLE = re.compile(r"[^ -~]")  # anything but printable ASCII (alert text is forged)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class Entry:
    kind: str
    severity: str
    ts: float | None  # capture time of the alert's first evidence (epoch s)
    summary: str


def parse_networks(text: str | Sequence[str]) -> list[IPNetwork]:
    """``10.0.0.0/8,2001:db8::/32,192.0.2.7`` -> networks; ValueError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[IPNetwork] = []
    for item in (i.strip() for i in items):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None
    return out


def _normalized(text: object) -> IPAddress | None:
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:192.0.2.1 is the IPv4 host
    return address


def never_blockable(address: IPAddress) -> bool:
    """Addresses no alert can get listed: this host, nobody, groups, broadcast."""
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return True
    return isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    )


def in_networks(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _clean(text: object) -> str:
    """Attacker-controlled text for a comment: one line of printable ASCII, short."""
    return _UNPRINTABLE.sub("?", str(text or ""))[:MAX_SUMMARY_CHARS]


def _stamp(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unstamp(text: str) -> float | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


class BlockList:
    """The block list file and what is in it. ``add_alerts`` lists the offenders of new
    alerts and rewrites the file when something was added; ``apply`` (nft only) also
    loads it with ``nft -f`` after each rewrite. Entries already in the file when it is
    opened are kept (a restart does not unblock anyone); delete the file to start over.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: str = "plain",
        min_severity: str = "high",
        never_block: Iterable[IPNetwork] = (),
        kinds: Iterable[str] = tuple(BLOCKING_KINDS),
        max_entries: int = DEFAULT_MAX_ENTRIES,
        apply: bool = False,
        log: Callable[[str], None] | None = None,
        nft: str = "nft",
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown block list format {fmt!r}; choose one of {FORMATS}")
        if min_severity not in SEVERITIES:
            raise ValueError(f"unknown severity {min_severity!r}; choose one of {SEVERITIES}")
        if apply and fmt != "nft":
            raise ValueError("applying the block list needs the nft format")
        self.path = Path(path)
        self.fmt = fmt
        self.min_severity = min_severity
        self.never_block = list(never_block)
        self.kinds = frozenset(kinds)
        self.max_entries = max_entries
        self.apply_with_nft = apply
        self.nft = nft
        self.log = log or (lambda _message: None)
        self.entries: dict[IPAddress, Entry] = {}
        self.refused_full = 0  # offenders not listed because the list was full
        self.apply_failures = 0
        self._load()

    # -- deciding -------------------------------------------------------------------------

    def offender(self, alert: dict[str, Any]) -> IPAddress | None:
        """The address ``alert`` asks to block, or None (kind, severity, address rules)."""
        if alert.get("kind") not in self.kinds:
            return None
        severity = alert.get("severity")
        if severity not in SEVERITIES:
            return None
        if SEVERITIES.index(severity) < SEVERITIES.index(self.min_severity):
            return None
        address = _normalized(alert.get("src_ip"))
        if address is None or not self._listable(address):
            return None
        return address

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> list[str]:
        """List the offenders of ``alerts`` not listed yet; rewrite the file (and apply it)
        if any was added. Returns the addresses added."""
        added = []
        for alert in alerts:
            address = self.offender(alert)
            if address is None or address in self.entries:
                continue
            if len(self.entries) >= self.max_entries:
                self.refused_full += 1
                if self.refused_full == 1:
                    self.log(
                        f"block list full ({self.max_entries} addresses): "
                        f"{address} and later offenders not listed"
                    )
                continue
            ts = alert.get("ts")
            self.entries[address] = Entry(
                kind=str(alert.get("kind")),
                severity=str(alert.get("severity")),
                ts=float(ts) if isinstance(ts, int | float) else None,
                summary=_clean(alert.get("summary")),
            )
            added.append(str(address))
        if added:
            self.write()
            if self.apply_with_nft:
                self.apply()
        return added

    # -- the file -------------------------------------------------------------------------

    def render(self) -> str:
        return self._render_nft() if self.fmt == "nft" else self._render_plain()

    def write(self) -> None:
        """Replace the file atomically: write a temporary file beside it, then rename."""
        text = self.render()
        directory = self.path.parent if str(self.path.parent) else Path(".")
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, 0o644)  # mkstemp makes it 0600; firewall scripts read it
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def apply(self) -> bool:
        """``nft -f FILE``; a failure is logged and counted, never raised (the monitor
        goes on)."""
        try:
            done = subprocess.run(
                [self.nft, "-f", str(self.path)],
                capture_output=True,
                text=True,
                timeout=APPLY_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.apply_failures += 1
            self.log(f"{self.path}: nft -f failed ({exc})")
            return False
        if done.returncode != 0:
            self.apply_failures += 1
            first = (done.stderr or done.stdout).strip().splitlines()[:1]
            self.log(f"{self.path}: nft -f failed: {first[0] if first else done.returncode}")
            return False
        return True

    def _comment(self, address: IPAddress, entry: Entry) -> str:
        return f"# {address} {entry.kind} {entry.severity} {_stamp(entry.ts)}: {entry.summary}"

    def _ordered(self) -> list[tuple[IPAddress, Entry]]:
        return sorted(self.entries.items(), key=lambda kv: (kv[0].version, int(kv[0])))

    def _render_plain(self) -> str:
        lines = [
            f"# voipscope block list: {len(self.entries)} addresses, one per line, each "
            "after a comment: address kind severity time (UTC): summary",
        ]
        for address, entry in self._ordered():
            lines.append(self._comment(address, entry))
            lines.append(str(address))
        return "\n".join(lines) + "\n"

    def _render_nft(self) -> str:
        table, chain = NFT_TABLE, NFT_CHAIN
        lines = [
            "#!/usr/sbin/nft -f",
            f"# voipscope block list: {len(self.entries)} addresses. Load with nft -f FILE: "
            f"creates or refreshes table {table} (sets {NFT_SET4}, {NFT_SET6}; chain {chain}).",
            f"table {table} {{",
            f"\tset {NFT_SET4} {{\n\t\ttype ipv4_addr\n\t}}",
            f"\tset {NFT_SET6} {{\n\t\ttype ipv6_addr\n\t}}",
            f"\tchain {chain} {{\n\t\ttype filter hook prerouting priority {NFT_PRIORITY}; "
            "policy accept;\n\t}",
            "}",
            # One transaction: the flushes and the adds below take effect together.
            f"flush chain {table} {chain}",
            f"flush set {table} {NFT_SET4}",
            f"flush set {table} {NFT_SET6}",
            f'add rule {table} {chain} ip saddr @{NFT_SET4} counter drop comment "voipscope"',
            f'add rule {table} {chain} ip6 saddr @{NFT_SET6} counter drop comment "voipscope"',
        ]
        for address, entry in self._ordered():
            name = NFT_SET4 if address.version == 4 else NFT_SET6
            lines.append(self._comment(address, entry))
            lines.append(f"add element {table} {name} {{ {address} }}")
        return "\n".join(lines) + "\n"

    def _load(self) -> None:
        """Keep what an earlier run listed: the entry comments (both formats) and, in a
        plain file, bare address lines someone added by hand."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        for line in text.splitlines():
            line = line.strip()
            match = _ENTRY_COMMENT.match(line)
            if match:
                address = _normalized(match.group(1))
                if address is not None and self._listable(address):
                    self.entries[address] = Entry(
                        match.group(2), match.group(3), _unstamp(match.group(4)), match.group(5)
                    )
            elif self.fmt == "plain" and line and not line.startswith("#"):
                address = _normalized(line)
                if address is not None and address not in self.entries and self._listable(address):
                    self.entries[address] = Entry("listed", "high", None, "listed before")

    def _listable(self, address: IPAddress) -> bool:
        """Not a never-blockable address and not in an allowed network (an allow-list
        given now also takes out what an earlier run listed)."""
        return not never_blockable(address) and not in_networks(address, self.never_block)
