"""How the service reaches Kafka: the brokers, the consumer group and the connection's security
(translated into client options by :mod:`service.kafka.security`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class KafkaSettings(BaseModel):
    kafka_bootstrap: str = "localhost:9092"
    group_id: str = "sagebridge"
    kafka_session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    """Consumer-group session timeout. A dead replica's partitions move after this long (and
    Tansu delays a group join by half of it), so tests use a short one."""
    kafka_idempotence: bool = False
    """Idempotent producer; on for real Kafka (Helm), off for brokers without it (Tansu)."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    """CA bundle for SSL / SASL_SSL; the system store when unset."""
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    """Client certificate and key for mutual TLS."""
    startup_wait_s: float = Field(120.0, gt=0)
    """At start-up, how long to wait for Kafka to answer before giving up (exit 2)."""
