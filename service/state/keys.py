"""Redis key names: ``<prefix>:<kind>:<part>:<part>...``, unambiguous whatever the parts hold.

Tenant values and ``event_id`` come from configuration and producers, and either may contain
``:``. Joined as they are, tenant ``(1, A)`` with event ``x:e`` and tenant ``(1, A:x)`` with
event ``e`` would name the same key. Each part is therefore escaped: ``%`` becomes ``%25`` and
``:`` becomes ``%3A`` (percent-encoding, restricted to the two characters that matter), so a
``:`` in a key is always a separator.

Parts without ``%`` or ``:`` are written unchanged, so keys written before this escaping
existed keep their names; only keys whose parts hold one of those two characters change (and
those were the ambiguous ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def escape(part: str) -> str:
    """One key part with ``%`` and ``:`` percent-encoded (``%`` first, so it round-trips)."""
    if "%" not in part and ":" not in part:
        return part
    return part.replace("%", "%25").replace(":", "%3A")


def unescape(part: str) -> str:
    """The inverse of :func:`escape`."""
    if "%" not in part:
        return part
    return part.replace("%3A", ":").replace("%25", "%")


def key(prefix: str, kind: str, *parts: str) -> str:
    """``prefix:kind:part:...`` with every part escaped (the prefix and kind are ours)."""
    return ":".join((prefix, kind, *(escape(p) for p in parts)))


class KeysUnder:
    """Keys ``prefix:kind:<a>:<b>:<last>`` for many ``last`` under few ``(a, b)`` (the ledger's
    tenants): each head is escaped and joined once, so a key costs one :func:`escape` and one
    concatenation. Heads are kept for good, so they must come from configuration."""

    def __init__(self, prefix: str, kind: str) -> None:
        self._prefix = prefix
        self._kind = kind
        self._heads: dict[tuple[str, str], str] = {}

    def key(self, head: tuple[str, str], last: str) -> str:
        """``key(prefix, kind, *head, last)``."""
        start = self._heads.get(head)
        if start is None:
            start = self._heads[head] = key(self._prefix, self._kind, *head) + ":"
        return start + escape(last)

    def keys(self, entries: Iterable[Sequence[Any]]) -> list[str]:
        """:meth:`key` of each entry's first two items (head, last), for the ledger's
        many-record steps: one call for all, not two per record."""
        heads = self._heads
        found: list[str] = []
        for entry in entries:
            start = heads.get(entry[0])
            if start is None:
                start = self.key(entry[0], "")
            last = entry[1]
            found.append(start + (last if "%" not in last and ":" not in last else escape(last)))
        return found


def pattern(prefix: str, kind: str) -> str:
    """A ``SCAN`` pattern for every key of ``kind`` under ``prefix``: the prefix's glob
    characters escaped, so it matches only itself (a prefix ``app[1]`` never ``app1``)."""
    head = key(prefix, kind) + ":"
    return "".join("\\" + c if c in "*?[]\\" else c for c in head) + "*"
