"""The Kafka producer that carries replies and dead letters, configured once."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from service.answers.partitioning import Murmur2Partitioner
from service.config import Settings
from service.kafka.security import kafka_client_options

REQUEST_TIMEOUT_MS = 20_000
ACK_TIMEOUT_S = 2 * REQUEST_TIMEOUT_MS / 1000 + 5
"""aiokafka settles a send within about two request timeouts (batch expiry plus one request in
flight); later than that, the acknowledgement is taken as lost and the answer is sent again."""
BATCH_BYTES = 256 * 1024
"""Room for a few polls' worth of replies per partition: the publisher appends to the batch it
handed over while aiokafka has not drained it (:mod:`service.answers.sender`), and a full batch
of the default 16 KB makes the next append wait."""


def reply_producer(settings: Settings) -> AIOKafkaProducer:
    """Acknowledged by every in-sync replica (``acks=all``): an answer is the reason an input
    offset may be committed. Partitions are chosen by Kafka's own murmur2 rule, so a reply
    lands where any Kafka client would put its key."""
    return AIOKafkaProducer(
        **kafka_client_options(settings),
        enable_idempotence=settings.kafka_idempotence,
        acks="all",
        linger_ms=5,
        partitioner=Murmur2Partitioner(),
        max_batch_size=BATCH_BYTES,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        max_request_size=max(1_048_576, settings.max_event_bytes + 65_536),
        client_id="sagebridge-answers",
    )
