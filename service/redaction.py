"""Masking known secrets (tokens, passwords) in text on its way out of the process.

Secrets are kept out of logs, replies and dead letters by construction: ``Tenant`` and the
settings hide them in ``repr``, and no call site logs headers or URLs with credentials. This is
the second line of defence for text that comes from elsewhere: the Cloud Connector's messages,
exception text, and whatever a producer put into an event. A secret is masked as it is, and as
it appears inside a JSON string (quotes, backslashes and control characters escaped), because
log lines are JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

MASK = "***"


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
        # Longest first: a secret that contains another is masked whole.
        self._texts = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode() for form in self._texts]
        if self._live is not None:
            self._version = self._live.version

    def _follow(self) -> None:
        if self._live is not None and self._live.version != self._version:
            self._learn(self._live)

    def __bool__(self) -> bool:
        self._follow()
        return bool(self._texts)

    def text(self, value: str) -> str:
        self._follow()
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        self._follow()
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, b"***")
        return value
