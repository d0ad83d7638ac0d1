"""Dialled numbers as E.164 (ITU-T E.164): which are international, which country they
go to, and which fall in a premium or high-cost range (``data/number_prefixes.csv``).

A dialled string is international when it starts with ``+`` (RFC 3966 global number)
or one of the configured exit prefixes: "00" is the ITU-recommended international
prefix (ITU-T E.164 Annex A / E.123); NANP dials "011", which is not a default because
"011x" is a national area code elsewhere (Leeds is 0113 in the UK).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from voipscope.text_fields import is_decimal

MAX_E164_DIGITS = 15  # ITU-T E.164 §6.1: at most 15 digits after the country code's +
_SEPARATORS = str.maketrans("", "", " -.()")  # RFC 3966 visual separators


@dataclass(frozen=True, slots=True)
class PrefixRow:
    prefix: str
    kind: str  # "country-code" | "high-cost" | "premium"
    name: str
    source: str
    compiled: str


@dataclass(frozen=True, slots=True)
class Dialled:
    digits: str  # as dialled, separators removed ("+" kept)
    e164: str | None  # country code + national number, no "+"; None if not known
    international: bool

    @property
    def country_code(self) -> str | None:
        return country_code(self.e164) if self.e164 and self.international else None


@cache
def prefix_rows() -> tuple[PrefixRow, ...]:
    text = (resources.files("voipscope.detect") / "data" / "number_prefixes.csv").read_text("utf-8")
    return tuple(PrefixRow(**row) for row in csv.DictReader(io.StringIO(text)))


@cache
def _short_country_codes() -> frozenset[str]:
    return frozenset(r.prefix for r in prefix_rows() if r.kind == "country-code")


@cache
def _costly() -> dict[str, PrefixRow]:
    return {r.prefix: r for r in prefix_rows() if r.kind != "country-code"}


def country_code(e164: str) -> str:
    """The country code of an E.164 number: one or two digits when the table lists them,
    else three (E.164 country codes are prefix-free)."""
    short = _short_country_codes()
    for length in (1, 2):
        if e164[:length] in short:
            return e164[:length]
    return e164[:3]


def costly_prefix(e164: str | None) -> PrefixRow | None:
    """The longest premium or high-cost row the number falls in."""
    if not e164:
        return None
    table = _costly()
    for length in range(min(len(e164), 6), 0, -1):
        row = table.get(e164[:length])
        if row is not None:
            return row
    return None


def parse_dialled(
    user: str | None,
    exit_prefixes: tuple[str, ...] = ("00",),
    home_country_code: str | None = None,
    trunk_prefix: str = "0",
) -> Dialled | None:
    """A dialled number from a SIP user part or tel: number; None when it is not digits
    (a name such as ``alice``, or ``*97`` feature codes)."""
    if not user:
        return None
    digits = user.split(";", 1)[0].translate(_SEPARATORS)
    plus = digits.startswith("+")
    bare = digits[1:] if plus else digits
    if not is_decimal(bare, MAX_E164_DIGITS + 4):
        return None
    if plus:
        return Dialled(digits, bare, True)
    for prefix in exit_prefixes:
        if bare.startswith(prefix) and len(bare) > len(prefix) + 3:
            return Dialled(digits, bare[len(prefix) :], True)
    if home_country_code and trunk_prefix and bare.startswith(trunk_prefix):
        return Dialled(digits, home_country_code + bare[len(trunk_prefix) :], False)
    return Dialled(digits, None, False)
