"""sip-enumeration: one source asking one server about many extensions (svwar, the
"extension scan" of toll-fraud crews) where the answers tell valid ones from the rest.

Opinion: within ``window_s``, requests without credentials from one source to one
server name at least ``min_users`` distinct extensions (To user of REGISTER, request-URI
user of INVITE/OPTIONS/...), and the server answered "no such user" (404, 484, 604) for
at least ``min_not_found`` of them and for at least ``min_not_found_ratio`` of those it
answered. A server that answers the same for every user gives nothing away (RFC 3261
§26.3.2.1 asks it to, Asterisk's ``alwaysauthreject``), so it raises nothing: that is the
discriminating answer this detector exists for. The extensions whose answer differed
(401/407 challenge, 403, 200, ringing, busy) are the ones the attacker now knows: they
are listed in ``data.valid_extensions``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from voipscope.bounded import CappedTable, SlidingDistinct
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.scanner_agents import first_scanner_tool, name_scanner
from voipscope.detect.sip_facts import SipFacts
from voipscope.detect.sip_pairs import SipPair, SipPairs

KIND = "sip-enumeration"
# RFC 3261 §21.4.5 404 Not Found, §21.4.22 484 Address Incomplete, §21.6.3 604 Does Not
# Exist Anywhere: "this user does not exist".
NOT_FOUND_CODES = frozenset({404, 484, 604})
# Answers that show the user exists: a challenge (§22.2), forbidden for this sender,
# accepted, ringing, busy, offline, declined.
EXISTS_CODES = frozenset({180, 183, 200, 202, 401, 403, 407, 480, 486, 600, 603})
PROBE_METHODS = frozenset({"REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", "MESSAGE", "NOTIFY"})
MAX_LISTED = 64  # valid extensions listed in an alert


@dataclass(frozen=True, slots=True)
class SipEnumerationConfig:
    """Thresholds (later config keys ``detect.sip_enumeration.*``)."""

    window_s: float = 300.0
    min_users: int = 10  # distinct extensions asked about
    min_not_found: int = 5  # of them answered "no such user"
    min_not_found_ratio: float = 0.3  # of the answered ones (a PBX calling out sees few)
    max_pairs: int = 10_000  # (source, server) pairs followed at once
    max_users_per_pair: int = 4096
    max_pending_per_pair: int = 1024  # requests waiting for their answer


@dataclass(slots=True, kw_only=True)
class _Pair(SipPair):
    users: SlidingDistinct[str]
    pending: CappedTable[tuple[str | None, int | None, str | None], str]
    not_found: SlidingDistinct[str]
    valid: dict[str, int] = field(default_factory=dict)  # extension -> answer code
    answered: SlidingDistinct[str] | None = None
    codes: Counter[int] = field(default_factory=Counter)
    valid_dropped: int = 0


class SipEnumerationDetector(Detector):
    name = "sip_enumeration"

    def __init__(self, book: AlertBook, config: SipEnumerationConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SipEnumerationConfig()

        def new_pair() -> _Pair:
            return _Pair(
                users=SlidingDistinct(cfg.window_s, cfg.max_users_per_pair),
                pending=CappedTable(cfg.max_pending_per_pair, str),
                not_found=SlidingDistinct(cfg.window_s, cfg.max_users_per_pair),
                answered=SlidingDistinct(cfg.window_s, cfg.max_users_per_pair),
            )

        gap_s = max(book.quiet_s, cfg.window_s)  # a quiet alert and an empty window
        self.pairs: SipPairs[_Pair] = SipPairs(cfg.max_pairs, new_pair, gap_s)

    def on_sip(self, f: SipFacts) -> None:
        if f.is_request:
            if f.method not in PROBE_METHODS or not f.target_user or f.auth_username:
                return  # credentialed requests are the brute-force detector's
            pair = self.pairs.of_request(f)
            pair.users.add(f.ts_s, f.target_user)
            pair.pending.put(f.transaction, f.target_user)
            return
        found = self.pairs.of_response(f)
        if found is None or f.status is None or f.status == 100:
            return
        user = found.pending.peek(f.transaction)
        if not user:
            return
        found.codes[f.status] += 1
        if f.status in NOT_FOUND_CODES:
            found.not_found.add(f.ts_s, user)
        elif f.status in EXISTS_CODES:
            if user not in found.valid and len(found.valid) >= MAX_LISTED:
                found.valid_dropped += 1
            else:
                found.valid[user] = f.status
        else:
            return
        assert found.answered is not None
        found.answered.add(f.ts_s, user)
        self._judge(f, found)

    def _judge(self, f: SipFacts, pair: _Pair) -> None:
        cfg = self.config
        assert pair.answered is not None
        users, missing, answered = len(pair.users), len(pair.not_found), len(pair.answered)
        if users < cfg.min_users or missing < cfg.min_not_found:
            return
        if missing < cfg.min_not_found_ratio * answered:
            return
        attacker, server = f.dst_ip, f.src_ip
        valid = sorted(pair.valid)
        tool = first_scanner_tool(pair.agents)
        data = {
            "users_tried": users,
            "not_found": missing,
            "valid_extensions": valid,
            "valid_extensions_dropped": pair.valid_dropped,
            "valid_answers": {u: pair.valid[u] for u in valid},
            "codes": {str(k): v for k, v in sorted(pair.codes.items())},
            "methods": list(pair.methods),
            "user_agents": list(pair.agents),
            "scanner_tool": tool,
            "window_s": cfg.window_s,
        }
        alert = pair.open_alert(self.book, f.ts_s)
        if alert is not None:
            alert.last_ts = f.ts_s
            alert.count = users
            alert.summary = _summary(users, missing, valid, server)
            alert.data.update(data)
            if valid and alert.severity == "medium":
                alert.severity = "high"
            return
        severity = "high" if valid else "medium"
        alert = Alert(
            ts=pair.first_ts if pair.first_ts is not None else f.ts_s,
            last_ts=f.ts_s,
            kind=KIND,
            severity=severity,
            src_ip=attacker,
            dst_ip=server,
            summary=_summary(users, missing, valid, server),
            evidence=[
                f"{users} distinct extensions within {cfg.window_s:g} s "
                f"(threshold {cfg.min_users}) by {', '.join(pair.methods)}",
                f"server answered 'no such user' for {missing} and differently for "
                f"{len(valid)}: the answers give valid extensions away",
            ],
            count=users,
            data=data,
        )
        name_scanner(alert, tool)
        pair.alert = self.book.raise_alert(alert)

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        cfg, pairs = self.config, self.pairs
        return {
            "pairs": (len(pairs), cfg.max_pairs),
            "users_per_pair": (pairs.largest(lambda p: len(p.users)), cfg.max_users_per_pair),
            "pending_per_pair": (pairs.largest(lambda p: len(p.pending)), cfg.max_pending_per_pair),
            "valid_per_pair": (pairs.largest(lambda p: len(p.valid)), MAX_LISTED),
        }

    @property
    def overflow(self) -> int:
        return self.pairs.overflow


def _summary(users: int, missing: int, valid: list[str], server: str) -> str:
    return f"{users} extensions probed on {server}: {missing} not found, {len(valid)} valid"
