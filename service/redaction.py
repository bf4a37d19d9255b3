"""Masking known secrets (tokens, passwords) in text on its way out of the process.

Secrets are kept out of logs, replies and dead letters by construction: ``Tenant`` and the
settings hide them in ``repr``, and no call site logs headers or URLs with credentials. This is
the second line of defence for text that comes from elsewhere: the Cloud Connector's messages,
exception text, and whatever a producer put into an event. A secret is masked as it is, and as
it appears inside a JSON string (quotes, backslashes and control characters escaped), because
log lines are JSON.

Every log record and outcome line (and every console page) is searched for every secret, and a
deployment holds a token per company: hundreds, in a reseller's. So the search is one
Aho-Corasick automaton over all of them (``ahocorasick_rs``, Rust's ``aho-corasick``), whose
cost per line grows little with their number, rather than a substring search per secret
(figures in bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import orjson
from ahocorasick_rs import AhoCorasick, BytesAhoCorasick, MatchKind

MASK = "***"
MASK_BYTES = MASK.encode()

S = TypeVar("S", str, bytes)


class SecretSet:
    """The secrets known so far, growing while the service runs: a token re-read from its file
    (:mod:`service.token_file`) joins it, so every :class:`Redactor` built on it masks the new
    token too. Old tokens stay: a message may still quote one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.version = 0
        """Grows with every secret added; redactors compare it to know when to rebuild."""
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.add(secret)
            self.version += 1

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._secrets))


class Redactor:
    """Replaces every occurrence of the given secrets with :data:`MASK`; given a
    :class:`SecretSet`, it follows the set as it grows."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._live = secrets if isinstance(secrets, SecretSet) else None
        self._version = -1
        self._learn(secrets)

    def _learn(self, secrets: Iterable[str]) -> None:
        forms = set()
        for secret in secrets:
            if secret:
                forms.add(secret)
                forms.add(orjson.dumps(secret).decode()[1:-1])
        texts = sorted(forms)
        # Every occurrence, overlapping ones too: where two secrets overlap in a text (or one
        # contains another), the mask covers both whole.
        self._texts = AhoCorasick(texts, matchkind=MatchKind.Standard) if texts else None
        self._bytes = (
            BytesAhoCorasick([t.encode() for t in texts], matchkind=MatchKind.Standard)
            if texts
            else None
        )
        if self._live is not None:
            self._version = self._live.version

    def _follow(self) -> None:
        if self._live is not None and self._live.version != self._version:
            self._learn(self._live)

    def __bool__(self) -> bool:
        self._follow()
        return self._texts is not None

    def text(self, value: str) -> str:
        self._follow()
        if self._texts is None:
            return value
        try:
            found = self._texts.find_matches_as_indexes(value, overlapping=True)
        except UnicodeEncodeError:  # a lone surrogate (text decoded with surrogateescape)
            passed = value.encode("utf-8", "surrogatepass")
            return self.data(passed).decode("utf-8", "surrogatepass")
        return _masked(value, found, MASK)

    def data(self, value: bytes) -> bytes:
        self._follow()
        if self._bytes is None:
            return value
        found = self._bytes.find_matches_as_indexes(value, overlapping=True)
        return _masked(value, found, MASK_BYTES)


def _masked(value: S, found: Sequence[tuple[int, int, int]], mask: S) -> S:
    """``value`` with the spans ``found`` (pattern, start, end) replaced by ``mask``: spans that
    overlap become one mask, so no part of either secret shows."""
    if not found:
        return value
    parts: list[S] = []
    kept = 0
    spans = sorted((start, end) for _, start, end in found)
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start < end:  # overlapping: one mask over both
            end = max(end, next_end)
            continue
        parts.append(value[kept:start])
        kept, (start, end) = end, (next_start, next_end)
    parts.append(value[kept:start])
    parts.append(value[end:])
    return mask.join(parts)
