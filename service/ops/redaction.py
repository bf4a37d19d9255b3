"""Masking known secrets (tokens, passwords) in text on its way out of the process.

Secrets are kept out of logs, replies and dead letters by construction: ``Tenant`` and the
settings hide them in ``repr``, and no call site logs headers or URLs with credentials. This is
the second line of defence for text that comes from elsewhere: the Cloud Connector's messages,
exception text, and whatever a producer put into an event. A secret is masked as it is, and as
it appears inside a JSON string (quotes, backslashes and control characters escaped), because
log lines are JSON.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

MASK = "***"


class Redactor:
    """Replaces every occurrence of the given secrets with :data:`MASK`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = set()
        for secret in secrets:
            if secret:
                forms.add(secret)
                forms.add(orjson.dumps(secret).decode()[1:-1])
        # Longest first: a secret that contains another is masked whole.
        self._texts = sorted(forms, key=len, reverse=True)
        self._bytes = [form.encode() for form in self._texts]

    def __bool__(self) -> bool:
        return bool(self._texts)

    def text(self, value: str) -> str:
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, b"***")
        return value
