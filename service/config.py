"""Settings from the environment (and ``.env``), named exactly as SPEC lists them.

A bad value stops start-up with :class:`~service.errors.SettingsError`, whose text is one line
naming the variable — the first thing an operator reads in a crash-looping pod. The tenants
(Sage companies and their tokens) are read by :mod:`service.tenants`; Kafka's connection options
are translated from these settings by :mod:`service.kafka.security`.

:class:`Settings` is assembled from one section per thing configured (:mod:`service.settings`):
each keeps its fields, defaults and checks; the rules across sections are here.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import SettingsError
from service.settings import ENV_PREFIX
from service.settings.connector import ConnectorSettings, is_loopback
from service.settings.delivery import DeliverySettings
from service.settings.intake import DEFAULT_CONTRACTS_DIR, IntakeSettings
from service.settings.kafka import KafkaSettings
from service.settings.operations import OperationsSettings
from service.settings.state import StateSettings, masked_redis_url, redis_passwords
from service.settings.topics import TopicSettings

__all__ = [
    "DEFAULT_CONTRACTS_DIR",
    "ENV_PREFIX",
    "LEASE_MARGIN_S",
    "Settings",
    "is_loopback",
    "load_settings",
    "masked_redis_url",
    "redis_passwords",
]

LEASE_MARGIN_S = 0.5
"""A transactional call starts only while the tenant lock's lease outlasts the call's own
timeout by this much: room for the moment between the lease check and the request leaving,
and for clock drift."""


class Settings(
    OperationsSettings,
    IntakeSettings,
    StateSettings,
    DeliverySettings,
    ConnectorSettings,
    TopicSettings,
    KafkaSettings,
    BaseSettings,
):
    """Every setting of the service, flat (``settings.kafka_bootstrap``), read from
    ``SAGEBRIDGE_*`` variables. Sections listed last come first in field order (Kafka first)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> Settings:
        least_ms = int((self.http_timeout_s + 2 * LEASE_MARGIN_S) * 1000)
        if self.lock_ttl_ms < least_ms:
            raise ValueError(
                f"{ENV_PREFIX}LOCK_TTL_MS ({self.lock_ttl_ms}) must be at least "
                f"{ENV_PREFIX}HTTP_TIMEOUT_S ({self.http_timeout_s:g} s) + "
                f"{2 * LEASE_MARGIN_S:g} s = {least_ms} ms: a transactional call starts only "
                "under a lease that outlasts its timeout"
            )
        return self


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; raises :class:`SettingsError` with a one-line reason."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings: its message names them
            raise SettingsError(first["msg"].removeprefix("Value error, ")) from None
        name = ENV_PREFIX + str(first["loc"][0]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from None
