"""The topics the service reads and writes: the CRM's input, the replies, the dead letters, and
which ``reply_to`` topics an event may ask for."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, field_validator
from pydantic_settings import NoDecode

from service.topic_names import is_topic_pattern, is_valid_topic


class TopicSettings(BaseModel):
    input_topics: Annotated[tuple[str, ...], NoDecode] = ("crm.events",)
    reply_topic: str = "sage.replies"
    dlt_topic: str = "sage.dlt"
    reply_topics: Annotated[tuple[str, ...] | None, NoDecode] = None
    """Allow-list of ``reply_to`` topics, ``*`` wildcards; unset: any topic not always refused
    (see :mod:`service.intake.topics`)."""
    dlt_replayed_topic: str | None = None
    """Where ``dlt replay`` records what it replayed (compacted, keyed by each letter's place):
    ``<DLT_TOPIC>.replayed`` when unset. See :attr:`replayed_topic`."""

    @property
    def replayed_topic(self) -> str:
        """The topic of replayed dead letters: the setting, else derived from the DLT's name."""
        return self.dlt_replayed_topic or f"{self.dlt_topic}.replayed"

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(t.strip() for t in value.split(",") if t.strip())
        if not value:
            raise ValueError("at least one topic is required")
        return value

    @field_validator("reply_topics", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(t.strip() for t in value.split(",") if t.strip()) or None
        return value

    @field_validator("reply_topics")
    @classmethod
    def _topic_patterns(cls, value: Any) -> Any:
        for pattern in value or ():
            if not is_topic_pattern(pattern):
                raise ValueError(f"{pattern!r} is not a topic name with '*' wildcards")
        return value

    @field_validator("input_topics", "reply_topic", "dlt_topic")
    @classmethod
    def _topic_names(cls, value: Any) -> Any:
        names = value if isinstance(value, tuple) else (value,)
        for name in names:
            if not is_valid_topic(name):
                raise ValueError(f"{name!r} is not a valid Kafka topic name")
        return value

    @field_validator("dlt_replayed_topic")
    @classmethod
    def _replayed_topic_name(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_topic(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value
