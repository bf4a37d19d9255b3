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

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.topic_names import KAFKA_INTERNAL_PREFIX, TopicPatterns

if TYPE_CHECKING:
    from service.config import Settings
    from service.tenants import Tenant


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
