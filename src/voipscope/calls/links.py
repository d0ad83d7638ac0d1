"""One story out of several calls: redirects followed, forwarded calls, B2BUA legs.

A caller that gets a 3xx calls the Contact it names (RFC 3261 §8.1.3.4) — with the same
Call-ID or a new one; a PBX that forwards a call starts a new one carrying Diversion
(RFC 5806) or History-Info (RFC 7044) naming the number that forwarded it; a B2BUA or SBC
bridges two legs, each with its own Call-ID but the same From and To. Each link is written
on both records with the reason, so an analyst can check it.

Only open calls are indexed (the tracker keeps a finished call for ``finished_linger_s``,
at least ``redirect_follow_s``), so the indexes are bounded by the open-dialog cap.
"""

from __future__ import annotations

from voipscope.calls.call_records import SipCall
from voipscope.calls.sip_headers import parse_name_addr, uri_key

MAX_PER_KEY = 8  # open calls remembered per address (a flood to one number keeps 8)
NS = 1_000_000_000


class CallLinker:
    def __init__(self, redirect_follow_s: float, b2bua_window_s: float) -> None:
        self.redirect_follow_ns = int(redirect_follow_s * NS)
        self.b2bua_window_ns = int(b2bua_window_s * NS)
        self._redirects: dict[str, list[tuple[int, SipCall]]] = {}
        self._by_parties: dict[tuple[str, str], list[tuple[int, SipCall]]] = {}
        self._by_callee_user: dict[str, list[tuple[int, SipCall]]] = {}
        # id(call) -> the (index, key) entries it is in, so ending a call costs O(its keys)
        self._where: dict[int, list[tuple[dict[object, list[tuple[int, SipCall]]], object]]] = {}

    def call_started(self, call: SipCall) -> None:
        """An initial INVITE: link it to what came before, then index it."""
        self._follows_redirect(call)
        self._forwarded(call)
        self._b2bua(call)
        if call.caller.uri and call.callee.uri:
            self._add(self._by_parties, (call.caller.uri, call.callee.uri), call.start_ns, call)
        if call.callee.user:
            self._add(self._by_callee_user, call.callee.user, call.start_ns, call)

    def redirected(self, call: SipCall, ts_ns: int) -> None:
        for uri in call.redirected_to:
            key = uri_key(uri)
            if key:
                self._add(self._redirects, key, ts_ns, call)  # type: ignore[arg-type]

    def call_ended(self, call: SipCall) -> None:
        for index, key in self._where.pop(id(call), []):
            entries = index.get(key)
            if entries is None:
                continue
            entries[:] = [(ts, c) for ts, c in entries if c is not call]
            if not entries:
                del index[key]

    def _add(self, index: dict, key: object, ts_ns: int, call: SipCall) -> None:  # type: ignore[type-arg]
        entries = index.setdefault(key, [])
        if any(c is call for _, c in entries):
            return
        entries.append((ts_ns, call))
        self._where.setdefault(id(call), []).append((index, key))
        if len(entries) > MAX_PER_KEY:
            del entries[0]  # the dropped call keeps a stale (index, key): removal skips it

    def _follows_redirect(self, call: SipCall) -> None:
        key = uri_key(call.request_uri)
        for ts_ns, old in reversed(self._redirects.get(key or "", [])):
            gap_ns = call.start_ns - ts_ns
            if old is call or not 0 <= gap_ns <= self.redirect_follow_ns:
                continue
            same = "same Call-ID" if old.call_id == call.call_id else "new Call-ID"
            why = (
                f"INVITE to {call.request_uri} {gap_ns / 1e9:.3f} s after the "
                f"{old.final_code} of {old.record_id} named it as Contact ({same})"
            )
            call.forwarded_from = old.record_id
            call.relate(old, "redirected-from", why)
            old.relate(call, "redirected-to", why)
            call.note(why)
            return

    def _forwarded(self, call: SipCall) -> None:
        diverting = [uri for uri, _ in call.diversion]
        diverting += [uri for uri, _ in call.history_info[:-1]]  # the last entry is the target
        for uri in diverting:
            found = parse_name_addr(f"<{uri}>")
            user = found.user if found else None
            for _, old in reversed(self._by_callee_user.get(user or "", [])):
                if old is call or old.caller.user != call.caller.user:
                    continue
                why = (
                    f"INVITE from {call.caller.user} names {uri} as the diverting party "
                    f"({'Diversion' if uri in dict(call.diversion) else 'History-Info'}); "
                    f"{old.record_id} called {old.callee.uri} from the same caller "
                    f"{(call.start_ns - old.start_ns) / 1e9:.3f} s before"
                )
                call.forwarded_from = call.forwarded_from or old.record_id
                call.relate(old, "forwarded-from", why)
                old.relate(call, "forwarded-to", why)
                return

    def _b2bua(self, call: SipCall) -> None:
        if not (call.caller.uri and call.callee.uri):
            return
        for start_ns, old in self._by_parties.get((call.caller.uri, call.callee.uri), []):
            gap_ns = call.start_ns - start_ns
            if old.call_id == call.call_id or not 0 <= gap_ns <= self.b2bua_window_ns:
                continue
            if old.final_code is not None and old.answer_ns is None:
                continue  # the first one failed already: a retry, not a second leg
            why = (
                f"same From {call.caller.uri} and To {call.callee.uri}, INVITEs "
                f"{gap_ns / 1e6:.1f} ms apart while the first was still open, different "
                "Call-IDs: two legs of one call through a B2BUA/SBC"
            )
            call.relate(old, "b2bua-leg", why)
            old.relate(call, "b2bua-leg", why)
