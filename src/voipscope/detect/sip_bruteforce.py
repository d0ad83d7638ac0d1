"""sip-bruteforce (register brute force): one source guessing digest passwords on one
server (svcrack, the REGISTER floods behind most SIP account takeovers).

Opinion: requests carrying Digest credentials (Authorization / Proxy-Authorization,
RFC 3261 §22.2-22.3) from one source to one server that were refused with another
challenge or 403 at least ``min_failures`` times within ``window_s`` (many guesses for a
user), or for at least ``min_users`` distinct user names (one guess for many users: a
spray). A phone with a stale password also retries, but every registration interval
(minutes), not dozens of times a minute. A 2xx to credentials from a source that was
already refused is a password found: severity high, the user named in ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voipscope.bounded import CappedTable, SlidingCount, SlidingDistinct, add_capped
from voipscope.detect.alerts import Alert, AlertBook
from voipscope.detect.base import Detector
from voipscope.detect.scanner_agents import first_scanner_tool, name_scanner
from voipscope.detect.sip_facts import SipFacts
from voipscope.detect.sip_pairs import SipPair, SipPairs

KIND = "sip-bruteforce"
# RFC 3261 §21.4.2 401, §21.4.8 407 (a fresh challenge after credentials = refused),
# §21.4.4 403 Forbidden (what Asterisk and Kamailio send for a wrong password).
REFUSED_CODES = frozenset({401, 403, 407})
MAX_USERS_LISTED = 64


@dataclass(frozen=True, slots=True)
class SipBruteforceConfig:
    """Thresholds (later config keys ``detect.sip_bruteforce.*``)."""

    window_s: float = 300.0
    min_failures: int = 10  # refused credentials within the window
    min_users: int = 5  # distinct user names refused within the window
    max_pairs: int = 10_000  # (source, server) pairs followed at once
    max_pending_per_pair: int = 1024  # credentialed requests awaiting their answer
    max_users_per_pair: int = 4096


@dataclass(slots=True, kw_only=True)
class _Pair(SipPair):
    failures: SlidingCount
    failed_users: SlidingDistinct[str]
    pending: CappedTable[str | None, str]  # Call-ID -> user of its latest credentials
    attempts: dict[str, int] = field(default_factory=dict)  # user -> credentialed requests
    attempts_dropped: int = 0
    refused: int = 0
    cracked: list[str] = field(default_factory=list)
    # Users refused in this pair's earlier episodes (user -> refusals), and when the last
    # of those ended: credentials accepted later for one of them are still a find.
    refused_users: dict[str, int] = field(default_factory=dict)
    earlier_refused: dict[str, int] = field(default_factory=dict)
    earlier_until: float | None = None


class SipBruteforceDetector(Detector):
    name = "sip_bruteforce"

    def __init__(self, book: AlertBook, config: SipBruteforceConfig | None = None) -> None:
        super().__init__(book)
        self.config = cfg = config or SipBruteforceConfig()

        def new_pair() -> _Pair:
            return _Pair(
                failures=SlidingCount(cfg.window_s, cfg.min_failures),
                failed_users=SlidingDistinct(cfg.window_s, cfg.max_users_per_pair),
                pending=CappedTable(cfg.max_pending_per_pair, str),
            )

        # A new episode after a quiet alert and an empty window; it keeps whom the
        # earlier ones guessed for (_carry).
        gap_s = max(book.quiet_s, cfg.window_s)
        self.pairs: SipPairs[_Pair] = SipPairs(cfg.max_pairs, new_pair, gap_s, _carry)

    def on_sip(self, f: SipFacts) -> None:
        if f.is_request:
            if not f.auth_username:
                return
            pair = self.pairs.of_request(f)
            user = f.auth_username
            if user in pair.attempts or len(pair.attempts) < MAX_USERS_LISTED:
                pair.attempts[user] = pair.attempts.get(user, 0) + 1
            else:
                pair.attempts_dropped += 1
            pair.pending.put(f.call_id, user)
            return
        found = self.pairs.of_response(f)
        if found is None or f.status is None:
            return
        user = found.pending.peek(f.call_id)
        if user is None:
            return
        if f.status in REFUSED_CODES:
            found.pending.pop(f.call_id)
            if f.stale_challenge:
                return  # right password, old nonce: the retry will be accepted
            found.refused += 1
            if user in found.refused_users or len(found.refused_users) < MAX_USERS_LISTED:
                found.refused_users[user] = found.refused_users.get(user, 0) + 1
            many_guesses = found.failures.add(f.ts_s)
            many_users = found.failed_users.add(f.ts_s, user) >= self.config.min_users
            if many_guesses or many_users or found.open_alert(self.book, f.ts_s) is not None:
                self._report(f, found)
        elif 200 <= f.status < 300:
            found.pending.pop(f.call_id)
            guessed_before = user in found.earlier_refused
            if found.refused or guessed_before:
                add_capped(found.cracked, user, MAX_USERS_LISTED)
                recent = found.failures.in_window(f.ts_s)
                if (
                    found.open_alert(self.book, f.ts_s) is not None
                    or recent >= self.config.min_failures
                    or guessed_before
                ):
                    self._report(f, found)

    def _report(self, f: SipFacts, pair: _Pair) -> None:
        attacker, server = f.dst_ip, f.src_ip
        attempts = sum(pair.attempts.values())
        tool = first_scanner_tool(pair.agents)
        data = {
            "usernames": list(pair.attempts),
            "attempts_per_user": dict(pair.attempts),
            "attempts": attempts,
            "refused": pair.refused,
            "users_dropped": pair.attempts_dropped,
            "succeeded": bool(pair.cracked),
            "cracked_users": list(pair.cracked),
            "methods": list(pair.methods),
            "user_agents": list(pair.agents),
            "scanner_tool": tool,
            "window_s": self.config.window_s,
        }
        alert = pair.open_alert(self.book, f.ts_s)
        if alert is not None:
            alert.last_ts = f.ts_s
            alert.count = attempts
            alert.summary = _summary(attempts, pair, server)
            if pair.cracked and not alert.data.get("succeeded"):
                alert.severity = "high"
                alert.add_evidence(f"credentials for {', '.join(pair.cracked)} accepted")
            alert.data.update(data)
            return
        severity = "high" if pair.cracked else "medium"
        alert = Alert(
            ts=pair.first_ts if pair.first_ts is not None else f.ts_s,
            last_ts=f.ts_s,
            kind=KIND,
            severity=severity,
            src_ip=attacker,
            dst_ip=server,
            summary=_summary(attempts, pair, server),
            evidence=[
                f"{pair.refused} credentialed requests refused (401/403/407), threshold "
                f"{self.config.min_failures} within {self.config.window_s:g} s or "
                f"{self.config.min_users} user names",
                f"user names tried: {', '.join(list(pair.attempts)[:8])}",
            ],
            count=attempts,
            data=data,
        )
        if pair.cracked:
            alert.add_evidence(f"credentials for {', '.join(pair.cracked)} accepted")
        earlier = {u: n for u, n in pair.earlier_refused.items() if u in pair.cracked}
        if earlier and pair.earlier_until is not None:
            alert.add_evidence(
                "refused before, in an earlier episode of guesses ending at "
                f"{pair.earlier_until:.3f}: "
                + ", ".join(f"{u} ({n} times)" for u, n in earlier.items())
            )
            alert.data["refused_earlier"] = earlier
        name_scanner(alert, tool)
        pair.alert = self.book.raise_alert(alert)

    def state_sizes(self) -> dict[str, tuple[int, int]]:
        cfg, pairs = self.config, self.pairs
        return {
            "pairs": (len(pairs), cfg.max_pairs),
            "pending_per_pair": (pairs.largest(lambda p: len(p.pending)), cfg.max_pending_per_pair),
            "users_per_pair": (pairs.largest(lambda p: len(p.attempts)), MAX_USERS_LISTED),
        }

    @property
    def overflow(self) -> int:
        return self.pairs.overflow


def _carry(old: _Pair, new: _Pair) -> None:
    """A new episode of the pair keeps whom the earlier ones guessed for (bounded): only
    episodes that were guessing (an alert was raised), so a phone that got its password
    wrong a few times and right later is no find."""
    new.earlier_refused = dict(old.earlier_refused)
    new.earlier_until = old.earlier_until
    if old.alert is None:
        return
    for user, n in old.refused_users.items():
        if user in new.earlier_refused or len(new.earlier_refused) < MAX_USERS_LISTED:
            new.earlier_refused[user] = new.earlier_refused.get(user, 0) + n
    new.earlier_until = old.last_ts


def _summary(attempts: int, pair: _Pair, server: str) -> str:
    users = len(pair.attempts)
    text = f"{attempts} password guesses for {users} user name(s) on {server}"
    if pair.cracked:
        text += f"; password found for {', '.join(pair.cracked)}"
    return text
