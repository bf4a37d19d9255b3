"""Who is signed in to the console, and the token that proves a form came from its own page.

Sessions live in the console's memory (one process; a restart signs everyone out), named by a
random cookie. A password is kept only as its scrypt hash, made on start; wrong passwords are
limited per client address, so a guesser gets a few tries a minute. Behind a trusted proxy the
user is the header's value and no password exists; the session then only carries the CSRF
token (the synchronizer-token pattern: every form holds its session's token and a POST
without it, or with another, is refused).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
"""scrypt's cost: the parameters RFC 7914 gives for interactive sign-ins."""
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0
SWEEP_AT = 1000
"""Sessions held before expired ones are swept out (they are otherwise dropped when used)."""


class PasswordCheck:
    """The password's salted scrypt hash; the password itself is not kept."""

    def __init__(self, password: str) -> None:
        self._salt = secrets.token_bytes(16)
        self._hash = self._derive(password)

    def _derive(self, password: str) -> bytes:
        return hashlib.scrypt(
            password.encode(), salt=self._salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P
        )

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(self._derive(password), self._hash)


@dataclass
class FailedSignIns:
    """Wrong passwords per client in the last minute; more than a few and it must wait."""

    limit: int = MAX_FAILURES
    window_s: float = FAILURE_WINDOW_S
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, client: str) -> deque[float]:
        times = self._seen.setdefault(client, deque())
        while times and times[0] < time.monotonic() - self.window_s:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.limit

    def failed(self, client: str) -> None:
        self._recent(client).append(time.monotonic())


@dataclass(frozen=True, slots=True)
class Session:
    user: str | None
    """Signed in with the password (``"operator"``), or ``None`` behind a proxy, whose header
    names the user on each request."""
    csrf: str
    expires: float


class Sessions:
    """Session id (the cookie) → :class:`Session`; ids are random and never reused."""

    def __init__(self, lifetime_s: float) -> None:
        self._lifetime_s = lifetime_s
        self._by_id: dict[str, Session] = {}

    def open(self, user: str | None) -> tuple[str, Session]:
        if len(self._by_id) >= SWEEP_AT:
            now = time.monotonic()
            self._by_id = {k: s for k, s in self._by_id.items() if s.expires >= now}
        sid = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), time.monotonic() + self._lifetime_s)
        self._by_id[sid] = session
        return sid, session

    def find(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None:
            return None
        if session.expires < time.monotonic():
            del self._by_id[sid or ""]
            return None
        renewed = Session(session.user, session.csrf, time.monotonic() + self._lifetime_s)
        self._by_id[sid or ""] = renewed
        return renewed

    def close(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


def same_token(sent: str | None, expected: str) -> bool:
    """A form's CSRF token against its session's, in constant time."""
    return bool(sent) and hmac.compare_digest(str(sent), expected)
