from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests import pcapbuild as pb

REPO = Path(__file__).resolve().parents[1]
SHARED_CAPTURES = REPO.parent / "shared" / "captures" / "ndpi"


@pytest.fixture
def write_pcap(tmp_path: Path) -> Callable[..., Path]:
    """Write packets as a pcap file in tmp_path and return its path."""
    counter = iter(range(1_000_000))

    def write(packets: Iterable[pb.Packet], name: str | None = None, **kwargs: object) -> Path:
        path = tmp_path / (name or f"capture{next(counter)}.pcap")
        path.write_bytes(pb.pcap(packets, **kwargs))  # type: ignore[arg-type]
        return path

    return write


@pytest.fixture
def shared_captures() -> Path:
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"shared captures not found at {SHARED_CAPTURES}")
    return SHARED_CAPTURES
