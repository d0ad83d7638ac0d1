"""Hypothesis over the flow-export parsers and the record stream: damaged NetFlow v5/v9
and IPFIX messages, random bytes, damaged IPFIX files. Only DecodeError subclasses may
escape the parsers, the decoder never raises on damage inside a message, and the record
pipeline turns any IPFIX file into Flow records or one SourceError (DESIGN §4)."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import FAST, LONG
from tests.fuzz.test_fuzz_readers import mutated
from tests.unit.source.test_flow_export import _samples
from voipscope.anomalies import AnomalyLog
from voipscope.config import FlowRecordConfig
from voipscope.errors import DecodeError, SourceError
from voipscope.record_pipeline import RecordPipeline
from voipscope.source import ipfix, netflow_v5, netflow_v9
from voipscope.source.flow_export import ANOMALIES, FlowExportDecoder
from voipscope.source.flow_fields import Template, decode_data_record

SEEDS = _samples()
_files = itertools.count()
PARSERS = (
    lambda b: netflow_v5.parse_v5(b, ""),
    netflow_v9.parse_v9_header,
    netflow_v9.split_flowsets,
    netflow_v9.parse_v9_templates,
    netflow_v9.parse_v9_options_templates,
    ipfix.parse_ipfix_header,
    ipfix.split_sets,
    lambda b: ipfix.parse_ipfix_templates(b, False),
    lambda b: ipfix.parse_ipfix_templates(b, True),
)


def check_message(messages: list[bytes], max_templates: int = 4) -> None:
    """Each message through every pure parser and one shared decoder."""
    decoder = FlowExportDecoder(FlowRecordConfig(max_templates=max_templates), AnomalyLog())
    for data in messages:
        for parse in PARSERS:
            with contextlib.suppress(DecodeError):
                parse(data)
        try:
            records = decoder.decode(data, "192.0.2.1", 1.0)
        except DecodeError:
            continue  # no export version at all: the caller's to judge
        for r in records:
            assert r.first_ns <= r.last_ns
            assert 0 <= r.src_port < 65536 and 0 <= r.proto < 256
    decoder.finish()
    assert set(decoder.anomalies.counts) <= set(ANOMALIES), decoder.anomalies.counts


@st.composite
def damaged_messages(draw: st.DrawFn) -> list[bytes]:
    count = draw(st.integers(1, 4))
    return [draw(mutated(draw(st.sampled_from(SEEDS)))) for _ in range(count)]


@FAST
@given(messages=damaged_messages(), max_templates=st.sampled_from([1, 4, 16384]))
def test_damaged_export_messages(messages: list[bytes], max_templates: int) -> None:
    check_message(messages, max_templates)


@FAST
@given(
    version=st.sampled_from([b"\x00\x05", b"\x00\x09", b"\x00\x0a"]),
    body=st.binary(max_size=400),
)
def test_random_bytes_with_an_export_version(version: bytes, body: bytes) -> None:
    check_message([version + body])


@FAST
@given(
    lengths=st.lists(st.sampled_from([1, 2, 4, 8, 16, 3, 0xFFFF]), min_size=1, max_size=8),
    ids=st.lists(
        st.sampled_from([1, 2, 4, 6, 7, 8, 12, 27, 152, 154, 156, 160, 21, 22]),
        min_size=8,
        max_size=8,
    ),
    enterprise=st.sampled_from([0, 29305, 9]),
    body=st.binary(max_size=200),
)
def test_data_records_of_any_template(lengths, ids, enterprise, body) -> None:  # type: ignore[no-untyped-def]
    from voipscope.source.flow_fields import FieldSpec

    template = Template(
        300, tuple(FieldSpec(i, n, enterprise) for i, n in zip(ids, lengths, strict=False))
    )
    at = 0
    while at < len(body):
        try:
            _, after = decode_data_record(body, at, template, [])
        except DecodeError:
            break
        assert after > at
        at = after


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_flow_export")


def check_file(workdir: Path, data: bytes) -> None:
    path = workdir / f"f{next(_files)}.ipfix"
    path.write_bytes(data)
    pipeline = RecordPipeline()
    try:
        for batch in pipeline.run_one(str(path)):
            assert batch.num_rows > 0
    except SourceError:
        pass
    finally:
        path.unlink()


IPFIX_SEEDS = [s for s in SEEDS if s[:2] == b"\x00\x0a"]


@FAST
@given(data=st.data())
def test_damaged_ipfix_files(workdir: Path, data: st.DataObject) -> None:
    seeds = data.draw(st.lists(st.sampled_from(IPFIX_SEEDS), min_size=1, max_size=3))
    check_file(workdir, data.draw(mutated(b"".join(seeds))))


@pytest.mark.slow
@LONG
@given(messages=damaged_messages(), max_templates=st.sampled_from([1, 4, 16384]))
def test_damaged_export_messages_fuzz_long(messages: list[bytes], max_templates: int) -> None:
    check_message(messages, max_templates)
