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

import orjson
from ahocorasick_rs import BytesAhoCorasick, MatchKind

MASK = "***"
MASK_BYTES = MASK.encode()


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
                forms.add(secret.encode())
                forms.add(orjson.dumps(secret)[1:-1])
        # Every occurrence, overlapping ones too: where two secrets overlap in a text (or one
        # contains another), the mask covers both whole.
        self._found = (
            BytesAhoCorasick(sorted(forms), matchkind=MatchKind.Standard) if forms else None
        )
        if self._live is not None:
            self._version = self._live.version

    def _follow(self) -> None:
        if self._live is not None and self._live.version != self._version:
            self._learn(self._live)

    def __bool__(self) -> bool:
        self._follow()
        return self._found is not None

    def text(self, value: str) -> str:
        """:meth:`data` on the text's UTF-8. A secret's bytes can only match whole characters
        (UTF-8 is self-synchronising), and ``surrogatepass`` carries the lone surrogates of
        text decoded with ``surrogateescape`` there and back."""
        self._follow()
        if self._found is None:
            return value
        return self.data(value.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")

    def data(self, value: bytes) -> bytes:
        self._follow()
        if self._found is None:
            return value
        return _masked(value, self._found.find_matches_as_indexes(value, overlapping=True))


def _masked(value: bytes, found: Sequence[tuple[int, int, int]]) -> bytes:
    """``value`` with the spans ``found`` (pattern, start, end) replaced by :data:`MASK`: spans
    that overlap become one mask, so no part of either secret shows."""
    if not found:
        return value
    parts: list[bytes] = []
    kept = 0  # where the text after the last mask begins
    for start, end in sorted((start, end) for _, start, end in found):
        if start < kept:  # overlaps the last mask: it grows
            kept = max(kept, end)
            continue
        parts.append(value[kept:start])
        kept = end
    parts.append(value[kept:])
    return MASK_BYTES.join(parts)
