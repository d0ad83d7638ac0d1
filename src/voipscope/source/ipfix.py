"""IPFIX (RFC 7011): a 16-byte message header and Sets of templates and data.

Set id 2 holds template records (§3.4.1), 3 options template records (§3.4.2), 256 and
up data records of that template (§3.4.3); 0, 1 and 4-255 are not used. A template
record with no fields withdraws the template (§8.1); a withdrawal with the set's own id
(2 or 3) as template id withdraws all of the domain's templates of that kind. Field
specifiers may carry an enterprise number (§3.2) and a length of 65535 for
variable-length fields (§7). Pure functions; the cache is ``flow_export``'s.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voipscope.errors import Malformed, Truncated
from voipscope.source.flow_fields import Template, TimeBase, read_field_specs, walk_sets

VERSION = 10
HEADER_BYTES = 16
TEMPLATE_SET = 2
OPTIONS_TEMPLATE_SET = 3
MIN_DATA_SET = 256

# version, length, export time (s), sequence number, observation domain id (§3.1)
_HEADER = struct.Struct("!HHIII")


@dataclass(frozen=True, slots=True)
class IpfixHeader:
    length: int
    export_time_s: int
    sequence: int
    domain: int

    def time_base(self, system_init_ms: int | None = None) -> TimeBase:
        return TimeBase(export_ms=self.export_time_s * 1000, system_init_ms=system_init_ms)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A template withdrawal (§8.1): one template id, or all of a kind (``template_id``
    is then 2 for data templates or 3 for options templates)."""

    template_id: int
    options: bool

    @property
    def withdraws_all(self) -> bool:
        return self.template_id in (TEMPLATE_SET, OPTIONS_TEMPLATE_SET)


def parse_ipfix_header(data: bytes | memoryview) -> IpfixHeader:
    """The message header. The length must cover the header and fit ``data``."""
    if len(data) < HEADER_BYTES:
        raise Truncated(f"IPFIX message header needs {HEADER_BYTES} bytes, got {len(data)}")
    version, length, export_s, seq, domain = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise Malformed(f"not IPFIX (version {version})")
    if length < HEADER_BYTES:
        raise Malformed(f"IPFIX message length {length} is shorter than its header")
    if length > len(data):
        raise Truncated(f"IPFIX message of {length} bytes cut at {len(data)}")
    return IpfixHeader(length, export_s, seq, domain)


def split_sets(
    message: bytes | memoryview,
) -> tuple[list[tuple[int, memoryview]], str | None]:
    """(set id, body) of each Set of one message (``message`` is exactly the message), and
    the problem that stopped the walk early; the Sets before it are still used."""
    return walk_sets(message, HEADER_BYTES, "Set", "message", short_tail_is_padding=False)


def parse_ipfix_templates(body: bytes | memoryview, options: bool) -> list[Template | Withdrawal]:
    """The template (or options template) records of one Set, withdrawals included.
    Padding (§3.3.1: fewer bytes than a record header, zero-filled) ends the Set."""
    out: list[Template | Withdrawal] = []
    header = 6 if options else 4
    at = 0
    while len(body) - at >= 4:
        template_id = int.from_bytes(body[at : at + 2], "big")
        count = int.from_bytes(body[at + 2 : at + 4], "big")
        if template_id == 0 and count == 0:
            break  # padding
        set_id = OPTIONS_TEMPLATE_SET if options else TEMPLATE_SET
        if count == 0:
            if template_id < MIN_DATA_SET and template_id != set_id:
                raise Malformed(f"IPFIX template withdrawal of id {template_id}")
            out.append(Withdrawal(template_id, options))
            at += 4
            continue
        if template_id < MIN_DATA_SET:
            raise Malformed(f"IPFIX template id {template_id} below 256")
        scope = 0
        if options:
            if len(body) - at < header:
                raise Truncated("IPFIX options template record cut in its header")
            scope = int.from_bytes(body[at + 4 : at + 6], "big")
            if scope == 0 or scope > count:
                raise Malformed(
                    f"IPFIX options template {template_id}: scope field count {scope} of "
                    f"{count} fields"
                )
        fields, at = read_field_specs(body, at + header, count, with_enterprise=True)
        out.append(Template(template_id, fields, scope, is_options=options))
    return out


def ipfix_message_length(head: bytes | memoryview) -> int | None:
    """The length of an IPFIX message starting at ``head`` (at least 4 bytes), or None if
    ``head`` is no IPFIX message header."""
    if len(head) < 4 or int.from_bytes(head[:2], "big") != VERSION:
        return None
    length = int.from_bytes(head[2:4], "big")
    return length if length >= HEADER_BYTES else None
