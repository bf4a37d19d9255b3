"""How records are delivered and how much is held at once: batches, retries, the circuit
breaker, the in-flight bounds and the drain on shutdown."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DeliverySettings(BaseModel):
    batch_max: int = Field(100, ge=1, le=10_000)
    batch_wait_ms: int = Field(200, ge=0, le=60_000)
    batch_concurrency: int = Field(4, ge=1, le=64)
    """Batch calls in flight per (tenant, endpoint); one record identity is never in two."""
    max_attempts: int = Field(5, ge=1, le=100)
    retry_backoff_ms: int = Field(200, ge=0)
    breaker_threshold: int = Field(5, ge=1)
    """Consecutive retryable failures that open a tenant's circuit breaker."""
    breaker_cooldown_ms: int = Field(1_000, ge=10)
    """First wait before probing an open breaker (doubles per failed probe, up to 30 s)."""
    max_in_flight: int = Field(5_000, ge=1)
    """Consumed records not yet answered; past this the consumer stops fetching (bounded memory)."""
    max_in_flight_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    """Value bytes of consumed records not yet answered; past this the consumer stops fetching,
    as past ``max_in_flight`` records (:mod:`service.offsets.flow`)."""
    drain_timeout_s: float = Field(8.0, gt=0)
    """On SIGTERM, how long to wait for open records before exiting (the rest are replayed)."""
