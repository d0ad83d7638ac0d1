"""QUIC endpoints (aioquic) for the behavioural model's non-VoIP lookalikes: encrypted
UDP that a model reading only sizes and gaps could take for SRTP. Run inside network
namespaces by generate.py (and tests/realtraffic/test_behaviour_quic.py).

    python -m tests.realtraffic.gen.quic_peer KIND server|client --addr IP:PORT
        --seconds S --seed N

KIND:
- ``bulk``: HTTP/3 downloads of 2-4 MB (at most 3, 1-3 s apart) over one connection;
- ``requests``: HTTP/3 page loads, a 10-40 kB page then 10-30 resources of 0.5-60 kB
  with up to 6 in flight, 0.5-3 s of reading between pages;
- ``datagrams``: RFC 9221 DATAGRAM frames every 20 ms both ways on a steady clock, the
  client's 40-120 B (inputs), the server's a random walk over 60-300 B (state updates):
  what a QUIC game or a Media-over-QUIC app's non-audio track looks like on the wire;
- ``stream-ticks``: the same pace and sizes as small writes on one bidirectional stream.

The server makes a self-signed certificate (cryptography, an aioquic dependency) in a
temporary directory at start; the client does not verify it. Nothing here carries voice:
the payloads are random bytes, so these flows are labelled ``other``/``QUIC``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ssl
import tempfile
import time
from pathlib import Path

import numpy as np
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    DatagramFrameReceived,
    ProtocolNegotiated,
    QuicEvent,
    StreamDataReceived,
)

SERVER_NAME = "voipscope.test"
TICK_ALPN = "voipscope-ticks"  # our own ALPN for the datagram and stream-tick kinds
TICK_S = 0.020  # a voice codec's frame time: the pace that makes this the hard lookalike
MAX_DATAGRAM_BYTES = 65_536  # RFC 9221 §3 max_datagram_frame_size we offer
IDLE_TIMEOUT_S = 10.0
IN_FLIGHT = 6  # a browser's usual parallel requests per page (one connection)
KINDS = ("bulk", "requests", "datagrams", "stream-ticks")


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 key and a one-day certificate for SERVER_NAME, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def configuration(kind: str, is_client: bool) -> QuicConfiguration:
    alpn = H3_ALPN if kind in ("bulk", "requests") else [TICK_ALPN]
    config = QuicConfiguration(
        is_client=is_client, alpn_protocols=alpn, idle_timeout=IDLE_TIMEOUT_S,
        max_datagram_frame_size=MAX_DATAGRAM_BYTES if kind == "datagrams" else None,
    )  # fmt: skip
    if is_client:
        config.server_name = SERVER_NAME
        config.verify_mode = ssl.CERT_NONE  # our own self-signed certificate
    return config


class TickSender:
    """Small payloads every TICK_S on an absolute schedule (a sender's clock, as a codec
    or a game loop has), as DATAGRAM frames or writes on one stream."""

    def __init__(self, protocol: QuicConnectionProtocol, kind: str, seed: int, low: int,
                 high: int, walk: bool) -> None:  # fmt: skip
        self.protocol = protocol
        self.kind = kind
        self.rng = np.random.default_rng(seed)
        self.low, self.high, self.walk = low, high, walk
        self.size = float((low + high) / 2)

    def payload(self) -> bytes:
        if self.walk:  # state updates: their size follows what happens
            self.size = float(np.clip(self.size + self.rng.normal(0, 25), self.low, self.high))
            n = int(self.size)
        else:  # inputs: independent of each other
            n = int(self.rng.integers(self.low, self.high + 1))
        return bytes(self.rng.integers(0, 256, n, dtype=np.uint8))

    async def run(self, seconds: float, stream_id: int | None) -> None:
        quic = self.protocol._quic
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < seconds:
            if self.kind == "datagrams":
                quic.send_datagram_frame(self.payload())
            elif stream_id is not None:
                quic.send_stream_data(stream_id, self.payload())
            self.protocol.transmit()
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))


class Server(QuicConnectionProtocol):
    kind = "bulk"
    seed = 1
    seconds = 15.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.h3: H3Connection | None = None
        self.ticker: asyncio.Task[None] | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is not None:
            for e in self.h3.handle_event(event):
                self._h3_event(e)
        elif isinstance(event, DatagramFrameReceived | StreamDataReceived):
            # The client speaks first; answer on the same clock from then on.
            stream_id = event.stream_id if isinstance(event, StreamDataReceived) else None
            if self.ticker is None:
                sender = TickSender(self, self.kind, self.seed + 1, 60, 300, walk=True)
                self.ticker = asyncio.ensure_future(sender.run(self.seconds, stream_id))

    def _h3_event(self, e: H3Event) -> None:
        if not isinstance(e, HeadersReceived) or self.h3 is None:
            return
        path = dict(e.headers).get(b":path", b"/0").decode()
        size = int(path.rsplit("/", 1)[-1] or 0)
        self.h3.send_headers(e.stream_id, [(b":status", b"200"),
                                           (b"content-length", str(size).encode())])  # fmt: skip
        self.h3.send_data(e.stream_id, bytes(size), end_stream=True)
        self.transmit()


class Client(QuicConnectionProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.h3: H3Connection | None = None
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.received: dict[int, int] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.h3 = H3Connection(self._quic)
        if self.h3 is None:
            return  # the ticks kinds drop what the server sends
        for e in self.h3.handle_event(event):
            if isinstance(e, DataReceived):
                self.received[e.stream_id] = self.received.get(e.stream_id, 0) + len(e.data)
                done = self.waiting.pop(e.stream_id, None) if e.stream_ended else None
                if done is not None and not done.done():
                    done.set_result(self.received.pop(e.stream_id))

    async def get(self, size: int) -> int:
        assert self.h3 is not None
        stream_id = self._quic.get_next_available_stream_id()
        self.waiting[stream_id] = asyncio.get_running_loop().create_future()
        self.h3.send_headers(stream_id, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", SERVER_NAME.encode()),
            (b":path", f"/bytes/{size}".encode()), (b"user-agent", b"voipscope-gen"),
        ], end_stream=True)  # fmt: skip
        self.transmit()
        return await self.waiting[stream_id]


async def run_server(kind: str, addr: tuple[str, int], seconds: float, seed: int) -> None:
    Server.kind, Server.seed, Server.seconds = kind, seed, seconds
    config = configuration(kind, is_client=False)
    with tempfile.TemporaryDirectory(prefix="vs-quic-") as tmp:
        cert, key = self_signed(Path(tmp))
        config.load_cert_chain(str(cert), str(key))
    server = await serve(addr[0], addr[1], configuration=config, create_protocol=Server)
    try:
        await asyncio.sleep(seconds + 8)
    finally:
        server.close()


async def run_client(kind: str, addr: tuple[str, int], seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    end = time.monotonic() + seconds
    config = configuration(kind, is_client=True)
    async with connect(addr[0], addr[1], configuration=config, create_protocol=Client) as c:
        client = c
        assert isinstance(client, Client)
        await client.wait_connected()
        if kind == "bulk":
            for _ in range(3):
                await client.get(int(rng.integers(2_000_000, 4_000_001)))
                if time.monotonic() + 3 > end:
                    break
                await asyncio.sleep(float(rng.uniform(1.0, 3.0)))
        elif kind == "requests":
            while time.monotonic() < end:
                await client.get(int(rng.integers(10_000, 40_001)))
                sizes = rng.integers(500, 60_001, int(rng.integers(10, 31))).tolist()
                for k in range(0, len(sizes), IN_FLIGHT):
                    await asyncio.gather(*(client.get(n) for n in sizes[k : k + IN_FLIGHT]))
                await asyncio.sleep(float(rng.uniform(0.5, 3.0)))
        else:
            stream_id = client._quic.get_next_available_stream_id() if kind != "datagrams" else None
            sender = TickSender(client, kind, seed, 40, 120, walk=False)
            await sender.run(seconds, stream_id)
            await asyncio.sleep(0.2)  # the server's last ticks
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("role", choices=("server", "client"))
    ap.add_argument("--addr", required=True)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    run = run_server if a.role == "server" else run_client
    # Bounded whatever the peer does: the generator also kills us at its deadline.
    asyncio.run(asyncio.wait_for(run(a.kind, _addr(a.addr), a.seconds, a.seed), a.seconds + 20))


if __name__ == "__main__":
    main()
