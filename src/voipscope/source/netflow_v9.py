"""NetFlow v9 (RFC 3954): a 20-byte header and FlowSets of templates and data.

FlowSet id 0 holds templates (§5.2), 1 options templates (§6.1), 256 and up data records
of the template with that id (§5.3); 2-255 are reserved. Record times are sysUpTime
relative (FIRST_SWITCHED/LAST_SWITCHED), made absolute with the header (§5.1).
Pure functions; the template cache lives in ``flow_export.FlowExportDecoder``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voipscope.errors import Malformed, Truncated
from voipscope.source.flow_fields import (
    FieldSpec,
    Template,
    TimeBase,
    read_field_specs,
    walk_sets,
)

VERSION = 9
HEADER_BYTES = 20
TEMPLATE_FLOWSET = 0  # §5.2
OPTIONS_TEMPLATE_FLOWSET = 1  # §6.1
MIN_DATA_FLOWSET = 256  # §5.3: FlowSet ids 256+ are template ids

# version, count, sysUpTime (ms), UNIX secs, sequence number, source id (§5.1)
_HEADER = struct.Struct("!HHIIII")


@dataclass(frozen=True, slots=True)
class V9Header:
    count: int
    sys_uptime_ms: int
    unix_secs: int
    sequence: int
    source_id: int

    @property
    def time_base(self) -> TimeBase:
        return TimeBase(export_ms=self.unix_secs * 1000, sys_uptime_ms=self.sys_uptime_ms)


def parse_v9_header(data: bytes | memoryview) -> V9Header:
    if len(data) < HEADER_BYTES:
        raise Truncated(f"NetFlow v9 header needs {HEADER_BYTES} bytes, got {len(data)}")
    version, count, uptime, secs, seq, source = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise Malformed(f"not NetFlow v9 (version {version})")
    return V9Header(count, uptime, secs, seq, source)


def split_flowsets(data: bytes | memoryview) -> tuple[list[tuple[int, memoryview]], str | None]:
    """(flowset id, body) of each FlowSet after the header, and the problem that stopped
    the walk early. Fewer than 4 bytes left after the last FlowSet: padding, which §5.3
    does not allow but which is harmless."""
    return walk_sets(data, HEADER_BYTES, "FlowSet", "datagram", short_tail_is_padding=True)


def parse_v9_templates(body: bytes | memoryview) -> list[Template]:
    """Every template record of a template FlowSet (§5.2): id, field count, fields.
    Trailing padding (fewer than 4 bytes, or zero bytes) ends the FlowSet."""
    templates = []
    at = 0
    while len(body) - at >= 4:
        template_id = int.from_bytes(body[at : at + 2], "big")
        count = int.from_bytes(body[at + 2 : at + 4], "big")
        if template_id == 0 and count == 0:
            break  # padding
        if template_id < MIN_DATA_FLOWSET:
            raise Malformed(f"NetFlow v9 template id {template_id} below 256")
        if count == 0:
            raise Malformed(f"NetFlow v9 template {template_id} with no fields")
        fields, at = read_field_specs(body, at + 4, count, with_enterprise=False)
        templates.append(Template(template_id, fields))
    return templates


def parse_v9_options_templates(body: bytes | memoryview) -> list[Template]:
    """Options template records (§6.1): id, scope length and option length in bytes, then
    the scope and option field specifiers. Only their record length matters here: data
    of an options template (sampler settings, interface names) is skipped, not a flow."""
    templates = []
    at = 0
    while len(body) - at >= 6:
        template_id = int.from_bytes(body[at : at + 2], "big")
        scope_bytes = int.from_bytes(body[at + 2 : at + 4], "big")
        option_bytes = int.from_bytes(body[at + 4 : at + 6], "big")
        if template_id == 0 and scope_bytes == 0 and option_bytes == 0:
            break  # padding
        if template_id < MIN_DATA_FLOWSET:
            raise Malformed(f"NetFlow v9 options template id {template_id} below 256")
        if scope_bytes % 4 or option_bytes % 4 or scope_bytes + option_bytes == 0:
            raise Malformed(
                f"NetFlow v9 options template {template_id}: scope/option lengths "
                f"{scope_bytes}/{option_bytes} are not whole field specifiers"
            )
        scope_count, option_count = scope_bytes // 4, option_bytes // 4
        fields, at = read_field_specs(body, at + 6, scope_count + option_count, False)
        templates.append(Template(template_id, fields, scope_count, is_options=True))
    return templates


__all__ = [
    "FieldSpec",
    "V9Header",
    "parse_v9_header",
    "parse_v9_options_templates",
    "parse_v9_templates",
    "split_flowsets",
]
