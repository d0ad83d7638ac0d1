"""Helpers for the `voipscope live` tests: two network namespaces joined by a veth pair
(a client side and a server side, where voipscope captures), and `voipscope live` run as
a process inside one with its output lines timed as they arrive.

Addresses are the namespaces' own (10.98.0.0/24 on the veth, 10.98.1.0/24 routed from the
client to the server, where nothing answers); both namespaces are deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

CLIENT_IP = "10.98.0.1"
SERVER_IP = "10.98.0.2"
SCANNER_IP = "10.98.0.66"  # a second address of the client side
ROUTED_NET = "10.98.1.0/24"  # reached through the server (scan targets); nothing answers
CLIENT_IF = "vcl0"
SERVER_IF = "vsv0"


def missing(*tools: str) -> str | None:
    """Why the live tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, packet sockets)"
    absent = [t for t in ("ip", *tools) if shutil.which(t) is None]
    return f"needs {', '.join(absent)}" if absent else None


@dataclass
class VethPair:
    client: str  # namespace names
    server: str

    def run_in(self, ns: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def veth_pair() -> Iterator[VethPair]:
    """Two namespaces and a veth between them (a generator for a pytest fixture)."""
    tag = uuid.uuid4().hex[:6]
    pair = VethPair(client=f"vlc-{tag}", server=f"vls-{tag}")
    _ip("netns", "add", pair.client)
    try:
        _ip("netns", "add", pair.server)
        try:
            # Created inside the namespaces: the root namespace never sees the interfaces.
            _ip("link", "add", CLIENT_IF, "netns", pair.client, "type", "veth",
                "peer", "name", SERVER_IF, "netns", pair.server)  # fmt: skip
            for ns, iface, addrs in (
                (pair.client, CLIENT_IF, (CLIENT_IP, SCANNER_IP)),
                (pair.server, SERVER_IF, (SERVER_IP,)),
            ):
                # No IPv6 autoconfiguration chatter: the idle test needs a quiet link.
                subprocess.run(
                    ["ip", "netns", "exec", ns, "sysctl", "-qw",
                     "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
                    check=False, capture_output=True,
                )  # fmt: skip
                for addr in addrs:
                    _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", iface)
                _ip("-n", ns, "link", "set", iface, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", pair.client, "route", "add", ROUTED_NET, "via", SERVER_IP)
            yield pair
        finally:
            subprocess.run(["ip", "netns", "del", pair.server], check=False)
    finally:
        subprocess.run(["ip", "netns", "del", pair.client], check=False)


@dataclass
class Line:
    at: float  # wall clock when the line arrived
    text: str


@dataclass
class LiveRun:
    """`voipscope live ARGS` inside ``ns``; stdout and stderr lines collected as they come."""

    ns: str
    args: list[str]
    cwd: Path
    process: subprocess.Popen[str] = field(init=False)
    stdout: list[Line] = field(default_factory=list)
    stderr: list[Line] = field(default_factory=list)
    _events: queue.Queue[tuple[str, Line]] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        cmd = ["ip", "netns", "exec", self.ns, sys.executable, "-m", "voipscope", "live",
               *self.args]  # fmt: skip
        self.process = subprocess.Popen(
            cmd, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for text in stream:
            line = Line(time.time(), text.rstrip("\n"))
            getattr(self, name).append(line)
            self._events.put((name, line))

    def wait_for(self, name: str, needle: str, timeout_s: float) -> Line | None:
        """The first line of ``name`` containing ``needle``, waiting up to ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while True:
            for line in list(getattr(self, name)):
                if needle in line.text:
                    return line
            left = end - time.monotonic()
            if left <= 0 or (self.process.poll() is not None and self._events.empty()):
                return None
            with contextlib.suppress(queue.Empty):
                self._events.get(timeout=min(left, 0.2))

    def wait_listening(self, timeout_s: float = 60.0) -> None:
        if self.wait_for("stderr", "listening on", timeout_s) is None:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"voipscope live did not start: {self.stderr_text()[-2000:]}")

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            # ip netns exec execs the command: the pid is voipscope's own.
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        time.sleep(0.2)  # the reader threads take the last lines
        return code

    def stderr_text(self) -> str:
        return "\n".join(line.text for line in self.stderr)

    def records(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line.text) for line in self.stdout if line.text.startswith("{")]


def loopback_netns(prefix: str, *addresses: str) -> Iterator[str]:
    """A network namespace of the test's own, named ``prefix-<random>``, with its
    loopback up and ``addresses`` (CIDR) on it; deleted afterwards (a generator for a
    pytest fixture)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        for address in addresses:
            subprocess.run(["ip", "-n", name, "addr", "add", address, "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


UDP_SEND = """
import socket, sys, time
src, dst = sys.argv[1], sys.argv[2]
port, count, gap = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(count):
    s.sendto(b"voipscope-test %d" % i, (dst, port))
    time.sleep(gap)
"""

# Answers each datagram once, for at most a minute (bounded, then exits by itself).
UDP_ECHO = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
end = time.monotonic() + 60
while time.monotonic() < end:
    try:
        data, peer = s.recvfrom(2048)
    except TimeoutError:
        continue
    s.sendto(data, peer)
"""

# Prints "echo" if an answer came within a second, else "silence".
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.settimeout(1.0)
s.sendto(b"ping", (sys.argv[2], int(sys.argv[3])))
try:
    s.recvfrom(2048)
    print("echo")
except TimeoutError:
    print("silence")
"""


def udp_send(pair: VethPair, src: str, dst: str, port: int, count: int, gap_s: float) -> None:
    subprocess.run(
        pair.run_in(pair.client, sys.executable, "-c", UDP_SEND, src, dst, str(port), str(count),
                    str(gap_s)),
        check=True, timeout=30,
    )  # fmt: skip


def udp_ask(pair: VethPair, src: str, dst: str, port: int) -> str:
    done = subprocess.run(
        pair.run_in(pair.client, sys.executable, "-c", UDP_ASK, src, dst, str(port)),
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.strip()


# Shipped with Debian's sip-tester: 7 s of G.711 A-law that sipp's uac_pcap plays.
G711_PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def link_sipp_pcaps(workdir: Path) -> None:
    """sipp's uac_pcap reads pcap/g711a.pcap (and the DTMF pcaps) from its cwd."""
    (workdir / "pcap").mkdir()
    for pcap in G711_PCAP.parent.glob("*.pcap"):
        (workdir / "pcap" / pcap.name).symlink_to(pcap)


def sipp_pcap_call(pair: VethPair, workdir: Path) -> None:
    """One call across the veth: sipp's UAS on the server side (media port 6000), its
    uac_pcap on the client side (6100) playing G711_PCAP and RFC 4733 DTMF to it; returns
    when both ended (the UAS is stopped whatever happens)."""
    link_sipp_pcaps(workdir)
    uas = subprocess.Popen(
        pair.run_in(pair.server, "sipp", "-sn", "uas", "-i", SERVER_IP, "-p", "5060",
                    "-mp", "6000", "-m", "1", "-timeout", "40s", "-nostdin"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        uac = subprocess.run(
            pair.run_in(pair.client, "sipp", "-sn", "uac_pcap", f"{SERVER_IP}:5060",
                        "-i", CLIENT_IP, "-p", "5062", "-mp", "6100", "-m", "1",
                        "-timeout", "40s", "-nostdin"),
            capture_output=True, timeout=60, cwd=workdir, check=False,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-500:]
        uas.wait(timeout=30)
    finally:
        stop_process(uas)
