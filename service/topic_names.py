"""Kafka topic names and patterns: the shared vocabulary of settings, tenants and intake.

A pattern is a topic name with ``*`` standing for any run of characters (``crm.*.replies``). It
sits at the bottom of the import graph because settings and the tenants file check topic names
when they are read, before anything above them exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate

KAFKA_INTERNAL_PREFIX = "__"


def is_valid_topic(name: str) -> bool:
    """Kafka's own rule: 1-249 of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``."""
    return (
        0 < len(name) <= 249
        and name not in (".", "..")
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    )


def is_topic_pattern(pattern: str) -> bool:
    """A topic name in which ``*`` may stand for any run of characters."""
    return is_valid_topic(pattern.replace("*", "x"))


@dataclass(frozen=True, slots=True)
class TopicPatterns:
    """An allow-list of topic names with ``*`` wildcards, matched case-sensitively as Kafka
    names are."""

    patterns: tuple[str, ...]
    _matcher: re.Pattern[str]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> TopicPatterns:
        """Patterns already checked by :func:`service.config.is_topic_pattern` (which refuses
        ``?`` and ``[...]``, so ``*`` is the only wildcard fnmatch sees)."""
        names = tuple(patterns)
        joined = "|".join(translate(p) for p in names) or "(?!)"  # the empty list matches none
        return cls(names, re.compile(joined))

    def matches(self, topic: str) -> bool:
        return self._matcher.match(topic) is not None
