"""Hypothesis over the capture readers: random files, damaged real and built captures.

Only VoipscopeError subclasses may escape read_capture/read_flows, and every batch and
decoded column must stay inside its bytes (tests/fuzz/support.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import pcapbuild as pb
from tests.fuzz.support import (
    FAST,
    LONG,
    SHARED,
    flows_checked,
    read_checked,
    real_captures,
    synthetic_captures,
)
from voipscope.config import SourceConfig

_files = itertools.count()

MAGICS = [
    b"\xd4\xc3\xb2\xa1",  # pcap µs, little-endian
    b"\xa1\xb2\xc3\xd4",  # pcap µs, big-endian
    b"\x4d\x3c\xb2\xa1",  # pcap ns
    b"\x34\xcd\xb2\xa1",  # Kuznetzov
    b"\x0a\x0d\x0d\x0a",  # pcapng SHB
    b"\x1f\x8b",  # gzip
    b"",
]

configs = st.builds(
    SourceConfig,
    window_bytes=st.sampled_from([16, 100, 4096, 1 << 20]),
    batch_packets=st.sampled_from([1, 3, 1000]),
    max_packet_bytes=st.sampled_from([64, 1 << 20]),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_readers")


def write(workdir: Path, data: bytes, suffix: str = ".cap") -> Path:
    path = workdir / f"f{next(_files)}{suffix}"
    path.write_bytes(data)
    return path


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bit flips, byte overwrites, insertions, deletions or a cut."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not buf:
            break
        kind = draw(st.sampled_from(["flip", "byte", "word", "insert", "delete", "cut"]))
        at = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            buf[at] = draw(st.integers(0, 255))
        elif kind == "word":  # a length field set to something extreme
            word = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x00\x00\x01\x00"]))
            buf[at : at + 4] = word
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del buf[at : at + draw(st.integers(1, 16))]
        else:
            del buf[at:]
    return bytes(buf)


# ---- random files -------------------------------------------------------------------


def check_random_file(workdir: Path, magic: bytes, body: bytes, config: SourceConfig) -> None:
    path = write(workdir, magic + body)
    read_checked(path, config)
    flows_checked(path)


@FAST
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=600), config=configs)
def test_random_bytes_as_a_capture(workdir, magic, body, config):
    check_random_file(workdir, magic, body, config)


@pytest.mark.slow
@LONG
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=4000), config=configs)
def test_random_bytes_as_a_capture_fuzz_long(workdir, magic, body, config):
    check_random_file(workdir, magic, body, config)


# ---- damaged real captures ----------------------------------------------------------


REAL = real_captures()
needs_real = pytest.mark.skipif(
    not REAL, reason=f"real captures not found in {SHARED} (../shared/captures/ndpi)"
)


def check_damaged(workdir: Path, seeds: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    damaged = data.draw(mutated(seeds[name]), label="damaged")
    config = data.draw(configs, label="config")
    compress = data.draw(st.booleans(), label="gzip")
    path = write(workdir, pb.gz(damaged) if compress else damaged)
    read_checked(path, config)
    flows_checked(path)


def check_truncated(workdir: Path, seeds: dict[str, bytes], data: st.DataObject) -> None:
    """A cut keeps exactly the packets before it, as reading the whole file gives them."""
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    whole = read_checked(write(workdir, seeds[name]), SourceConfig())
    assert whole is not None, name
    cut = data.draw(st.integers(0, len(seeds[name])), label="cut")
    config = data.draw(configs.filter(lambda c: c.max_packet_bytes > 64), label="config")
    path = write(workdir, seeds[name][:cut])
    got = read_checked(path, config)
    if got is not None:
        assert got == whole[: len(got)]
    if cut == len(seeds[name]):
        assert got == whole


@needs_real
@FAST
@given(data=st.data())
def test_damaged_real_captures(workdir, data):
    check_damaged(workdir, REAL, data)


@needs_real
@FAST
@given(data=st.data())
def test_truncated_real_captures(workdir, data):
    check_truncated(workdir, REAL, data)


@needs_real
@pytest.mark.slow
@LONG
@given(data=st.data())
def test_damaged_real_captures_fuzz_long(workdir, data):
    check_damaged(workdir, REAL, data)


@needs_real
@pytest.mark.slow
@LONG
@given(data=st.data())
def test_truncated_real_captures_fuzz_long(workdir, data):
    check_truncated(workdir, REAL, data)


# ---- damaged captures built here (always available) ---------------------------------


SYNTH = {k: v for k, v in synthetic_captures().items() if not k.endswith(".gz")}


@FAST
@given(data=st.data())
def test_damaged_built_captures(workdir, data):
    check_damaged(workdir, synthetic_captures(), data)


@FAST
@given(data=st.data())
def test_truncated_built_captures(workdir, data):
    check_truncated(workdir, SYNTH, data)


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_damaged_built_captures_fuzz_long(workdir, data):
    check_damaged(workdir, synthetic_captures(), data)


@FAST
@given(data=st.data())
def test_damaged_gzip_stream(workdir, data):
    """Damage inside the compressed bytes: keep what inflates, or refuse it cleanly."""
    seeds = {**SYNTH, **REAL}
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
    damaged = data.draw(mutated(pb.gz(seeds[name])), label="damaged gzip")
    path = write(workdir, damaged)
    read_checked(path, data.draw(configs, label="config"))
    flows_checked(path)


def test_seed_captures_read_cleanly(workdir):
    """The seeds themselves are good captures: the properties above start from truth."""
    for name, content in {**synthetic_captures(), **REAL}.items():
        path = write(workdir, content)
        records = read_checked(path, SourceConfig())
        assert records, name
        # Small windows and batches read the same packets.
        assert read_checked(path, SourceConfig(window_bytes=16, batch_packets=1)) == records
