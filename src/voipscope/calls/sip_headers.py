"""What the calls stage reads out of SIP header values: addresses, tags, branches, digest
user names, DTMF digits, transfer targets.

Pure functions over the strings ``voipscope.dissect.sip`` hands out. Header values are
attacker-controlled: every function returns None (or an empty list) for a value it cannot
read and never raises; lists are capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voipscope.text_fields import is_decimal

MAX_LIST_ITEMS = 16  # Contact/Diversion/History-Info entries kept from one header value

_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*([0-9]{1,10})", re.IGNORECASE)
_DIGEST_USERNAME = re.compile(r"\busername\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^,\s]+))", re.I)
_DIGEST_REALM = re.compile(r"\brealm\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^,\s]+))", re.I)
_REASON_PARAM = re.compile(r";\s*reason\s*=\s*\"?([^;\",\s>]+)", re.IGNORECASE)
_HISTORY_CAUSE = re.compile(r"cause%3D([0-9]{3})", re.IGNORECASE)
_SIPFRAG_STATUS = re.compile(rb"^\s*SIP/2\.0 (\d{3})")

# RFC 4733 §3.2 event codes 0-15 as the digits a keypad shows (dtmf-relay bodies send
# "Signal=11" for # on some phones).
DTMF_EVENTS = "0123456789*#ABCD"
DTMF_SYMBOLS = frozenset(DTMF_EVENTS + "abcd")


@dataclass(slots=True, frozen=True)
class NameAddr:
    """A From/To/Contact value: ``"Alice" <sip:alice@example.com;user=phone>;tag=1``."""

    uri: str  # the addr-spec, as Wireshark shows it: "sip:alice@example.com;user=phone"
    display: str | None  # "Alice"
    user: str | None  # "alice" (a tel: URI gives the number)
    host: str | None  # "example.com" (lower case, no port)

    @property
    def key(self) -> str:
        """The address for matching one message to another: user@host, or the URI."""
        if self.user and self.host:
            return f"{self.user}@{self.host}"
        return self.user or self.host or self.uri


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 §7.3.1) without cutting inside
    quotes or angle brackets: ``<sip:a@b;x=1,2>, "B, Bob" <sip:c@d>`` is two items."""
    items: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            items.append(value[start:i].strip())
            start = i + 1
            if len(items) >= MAX_LIST_ITEMS:
                return [item for item in items if item]
        i += 1
    items.append(value[start:].strip())
    return [item for item in items if item]


def parse_name_addr(value: str | None) -> NameAddr | None:
    """RFC 3261 §20.10/§25.1 name-addr or addr-spec. Without angle brackets the
    parameters after ``;`` belong to the header, not to the URI (§20)."""
    if not value:
        return None
    text = value.strip()
    display: str | None = None
    rest = text
    if text.startswith('"'):
        end = 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        display = text[1:end].replace('\\"', '"') or None
        rest = text[end + 1 :]
    open_at = rest.find("<")
    if open_at >= 0:
        if display is None:
            display = rest[:open_at].strip() or None
        close_at = rest.find(">", open_at)
        uri = rest[open_at + 1 : close_at if close_at >= 0 else len(rest)].strip()
    else:
        uri = rest.split(";", 1)[0].strip()
    if not uri:
        return None
    user, host = _user_host(uri)
    return NameAddr(uri, display, user, host)


def _user_host(uri: str) -> tuple[str | None, str | None]:
    scheme, colon, rest = uri.partition(":")
    if not colon:
        return None, None
    scheme = scheme.lower()
    if scheme == "tel":  # RFC 3966: tel:+1-201-555-0123;phone-context=...
        number = rest.split(";", 1)[0].strip()
        return number or None, None
    if scheme not in ("sip", "sips"):
        return None, None
    rest = rest.split("?", 1)[0]
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        hostport, userinfo = rest, ""
    user = userinfo.split(":", 1)[0].split(";", 1)[0] or None
    hostport = hostport.split(";", 1)[0]
    if hostport.startswith("["):  # IPv6 reference: [2001:db8::1]:5060
        host = hostport[1 : hostport.find("]")] if "]" in hostport else hostport[1:]
    else:
        host = hostport.split(":", 1)[0]
    return user, (host.lower() or None)


def uri_key(uri: str | None) -> str | None:
    """``sip:Bob@Example.com:5060;transport=udp`` -> ``Bob@example.com``: the part of a
    URI that says who, for matching a 3xx Contact to the request URI of the next INVITE."""
    if not uri:
        return None
    found = parse_name_addr(uri if "<" in uri else f"<{uri}>")
    return found.key if found else None


def top_via_branch(via: str | None) -> str | None:
    """The branch of the topmost Via (RFC 3261 §8.1.1.7): the transaction's name."""
    if not via:
        return None
    first = split_list(via)[:1]
    if not first:
        return None
    m = _BRANCH.search(first[0])
    return m.group(1) if m else None


def contact_uris(values: list[str]) -> list[str]:
    """Every URI of the Contact headers (a 3xx lists where to go next, §21.3)."""
    out: list[str] = []
    for value in values:
        for item in split_list(value):
            if item == "*":
                continue
            found = parse_name_addr(item)
            if found and found.uri not in out:
                out.append(found.uri)
            if len(out) >= MAX_LIST_ITEMS:
                return out
    return out


def contact_expires(values: list[str]) -> int | None:
    """The ``expires`` parameter of the first Contact that has one (§10.2.1.1)."""
    for value in values:
        for item in split_list(value):
            m = _EXPIRES_PARAM.search(item.rsplit(">", 1)[-1])
            if m:
                return int(m.group(1))
    return None


def digest_username(value: str | None) -> str | None:
    """The ``username`` of Digest credentials (RFC 3261 §22.4, RFC 7616)."""
    return _quoted_param(_DIGEST_USERNAME, value)


def digest_realm(value: str | None) -> str | None:
    return _quoted_param(_DIGEST_REALM, value)


def _quoted_param(pattern: re.Pattern[str], value: str | None) -> str | None:
    if not value:
        return None
    m = pattern.search(value)
    if not m:
        return None
    found = m.group(1) if m.group(1) is not None else m.group(2)
    return found[:256] if found else None


def diversions(values: list[str]) -> list[tuple[str, str | None]]:
    """Diversion (RFC 5806 §4): who forwarded the call, and why (``reason=no-answer``)."""
    out: list[tuple[str, str | None]] = []
    for value in values:
        for item in split_list(value):
            found = parse_name_addr(item)
            if found is None:
                continue
            m = _REASON_PARAM.search(item.rsplit(">", 1)[-1])
            out.append((found.uri, m.group(1) if m else None))
            if len(out) >= MAX_LIST_ITEMS:
                return out
    return out


def history_info(values: list[str]) -> list[tuple[str, str | None]]:
    """History-Info (RFC 7044 §4): the targets a request was retargeted through, each
    with the response code that made it move on (``Reason=SIP;cause=302`` escaped in the
    URI), oldest first."""
    out: list[tuple[str, str | None]] = []
    for value in values:
        for item in split_list(value):
            found = parse_name_addr(item)
            if found is None:
                continue
            m = _HISTORY_CAUSE.search(found.uri)
            out.append((found.uri.split("?", 1)[0], m.group(1) if m else None))
            if len(out) >= MAX_LIST_ITEMS:
                return out
    return out


def dtmf_from_info(content_type: str | None, body: bytes) -> tuple[str, int | None] | None:
    """A key press carried by SIP INFO: ``application/dtmf-relay`` (``Signal=5``,
    ``Duration=160`` in ms) or ``application/dtmf`` (the digit alone). No RFC defines
    either body; these are the forms phones and PBXs send (Cisco, Asterisk, SIPp)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in ("application/dtmf-relay", "application/dtmf"):
        return None
    text = body[:512].decode("utf-8", "replace")
    if kind == "application/dtmf":
        digit = _digit(text.strip())
        return (digit, None) if digit else None
    signal: str | None = None
    duration: int | None = None
    for line in text.replace("\r", "\n").split("\n"):
        name, eq, value = line.partition("=")
        if not eq:
            continue
        name = name.strip().lower()
        value = value.strip()
        if name == "signal":
            signal = _digit(value)
        elif name == "duration" and is_decimal(value, 9):
            duration = int(value)
    return (signal, duration) if signal else None


def _digit(value: str) -> str | None:
    if len(value) == 1 and value in DTMF_SYMBOLS:
        return value.upper()
    if is_decimal(value, 2) and int(value) < len(DTMF_EVENTS):
        return DTMF_EVENTS[int(value)]
    return None


def sipfrag_status(content_type: str | None, body: bytes) -> int | None:
    """The status code of a ``message/sipfrag`` body (RFC 3420), which NOTIFYs of a
    REFER subscription use to say how the transfer went (RFC 3515 §2.4.5)."""
    if "sipfrag" not in (content_type or "").lower():
        return None
    m = _SIPFRAG_STATUS.match(body[:64])
    return int(m.group(1)) if m else None
