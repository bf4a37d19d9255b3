"""Kafka topic names: which are valid, and which an event may name as its ``reply_to``.

Whoever can write to the input topic chooses ``reply_to``, so it must not let them aim
sagebridge at topics outside its remit: an input topic (the reply would come back as an event),
the dead-letter topic (``dlt replay`` would re-publish a reply as if it were an event), Kafka's
own topics (``__consumer_offsets``), or another company's reply topic.

The rules, in order:

1. the default reply topic (``SAGEBRIDGE_REPLY_TOPIC``) is always allowed;
2. an input topic, the dead-letter topic and any topic starting with ``__`` are always refused;
3. a tenant with its own ``reply_topics`` (tenants file) may name only those: its list
   replaces the global one rather than adding to it, so that giving a company its own topics
   keeps it out of everyone else's;
4. otherwise, when ``SAGEBRIDGE_REPLY_TOPICS`` is set, only the topics it names;
5. otherwise any topic.

Patterns are topic names with ``*`` standing for any run of characters (``crm.*.replies``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Settings
    from service.tenants import Tenant

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


@dataclass(frozen=True, slots=True)
class ReplyTopics:
    """The ``reply_to`` rules of one deployment (see the module docstring)."""

    default: str
    input_topics: frozenset[str]
    dlt: str
    allowed: TopicPatterns | None
    """``SAGEBRIDGE_REPLY_TOPICS``; ``None`` when unset."""
    replayed: str = ""
    """Where ``dlt replay`` records what it replayed: a reply there could mark letters as
    replayed that never were."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplyTopics:
        allowed = TopicPatterns.of(settings.reply_topics) if settings.reply_topics else None
        return cls(
            settings.reply_topic,
            frozenset(settings.input_topics),
            settings.dlt_topic,
            allowed,
            settings.replayed_topic,
        )

    def refusal(self, topic: str, tenant: Tenant) -> str | None:
        """Why ``tenant``'s events may not be answered on ``topic``; ``None`` if they may."""
        if topic == self.default:
            return None
        if topic in self.input_topics:
            return "it is an input topic"
        if topic == self.dlt:
            return "it is the dead-letter topic"
        if topic == self.replayed:
            return "it records the dead letters replayed"
        if topic.startswith(KAFKA_INTERNAL_PREFIX):
            return "topics starting with '__' are Kafka's own"
        if tenant.reply_topics is not None:
            if tenant.reply_topics.matches(topic):
                return None
            return f"not among the reply_topics of tenant {tenant.customer}/{tenant.company}"
        if self.allowed is None or self.allowed.matches(topic):
            return None
        return "not among SAGEBRIDGE_REPLY_TOPICS"
