"""Settings from the environment (and ``.env``), named exactly as SPEC lists them.

A bad value stops start-up with :class:`~service.errors.SettingsError`, whose text is one line
naming the variable — the first thing an operator reads in a crash-looping pod. The tenants
(Sage companies and their tokens) are read by :mod:`service.tenants`; Kafka's connection options
are translated from these settings by :mod:`service.kafka.security`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, unquote_plus, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.errors import SettingsError
from service.redaction import Redactor
from service.topic_names import is_topic_pattern, is_valid_topic

ENV_PREFIX = "SAGEBRIDGE_"

DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
"""The table contracts, routes and mappings shipped with the service (``contracts/``)."""

LEASE_MARGIN_S = 0.5
"""A transactional call starts only while the tenant lock's lease outlasts the call's own
timeout by this much: room for the moment between the lease check and the request leaving,
and for clock drift."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    kafka_bootstrap: str = "localhost:9092"
    input_topics: Annotated[tuple[str, ...], NoDecode] = ("crm.events",)
    group_id: str = "sagebridge"
    reply_topic: str = "sage.replies"
    dlt_topic: str = "sage.dlt"
    redis_url: str = "redis://localhost:6379/0"
    """May hold a password: masked wherever settings are printed (see :func:`redis_passwords`)."""
    connector_allow_http: bool = False
    """Allow a plain ``http://`` Connector URL to a host other than this machine. Off, because
    every call carries a tenant's token in its headers."""
    connector_url: str = "http://localhost:8080"
    auth_token: SecretStr | None = None
    customer: str | None = None
    company: str | None = None
    tenants_file: Path | None = None
    batch_max: int = Field(100, ge=1, le=10_000)
    batch_wait_ms: int = Field(200, ge=0, le=60_000)
    batch_concurrency: int = Field(4, ge=1, le=64)
    """Batch calls in flight per (tenant, endpoint); one record identity is never in two."""
    max_in_flight: int = Field(5_000, ge=1)
    """Consumed records not yet answered; past this the consumer stops fetching (bounded memory)."""
    max_event_bytes: int = Field(1_000_000, ge=1_024)
    """Largest event value accepted; bigger ones are refused at parse (Kafka's own default)."""
    http_timeout_s: float = Field(30.0, gt=0)
    connector_max_connections: int | None = Field(None, ge=1)
    """Connections to the Cloud Connector, shared by every company; unset: 64 plus one per
    configured company, so each company's one-at-a-time call always finds one."""
    max_attempts: int = Field(5, ge=1, le=100)
    retry_backoff_ms: int = Field(200, ge=0)
    http_port: int = Field(8000, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    """Address the health server binds (``::`` for every IPv6 address, ``127.0.0.1`` for this
    machine only)."""
    contracts_dir: Path = DEFAULT_CONTRACTS_DIR
    breaker_threshold: int = Field(5, ge=1)
    """Consecutive retryable failures that open a tenant's circuit breaker."""
    breaker_cooldown_ms: int = Field(1_000, ge=10)
    """First wait before probing an open breaker (doubles per failed probe, up to 30 s)."""
    startup_wait_s: float = Field(120.0, gt=0)
    """At start-up, how long to wait for Kafka to answer before giving up (exit 2)."""
    drain_timeout_s: float = Field(8.0, gt=0)
    """On SIGTERM, how long to wait for open records before exiting (the rest are replayed)."""
    lock_ttl_ms: int = Field(40_000, ge=100)
    """Tenant lock lease: how long a dead replica can block a tenant's serial lane. A call
    starts only while the lease outlasts ``http_timeout_s``, so it must exceed that."""
    settle_after_unknown_s: float = Field(120.0, ge=0)
    """After a transactional call whose outcome is unknown, how long the tenant makes no
    further call: the Cloud Connector may still be processing it (see README)."""
    lock_wait_ms: int = Field(30_000, ge=10)
    """Longest single wait for a tenant lock before logging and waiting again."""
    idempotency_retention_s: int = Field(7 * 24 * 3600, ge=60)
    """How long the ledger remembers delivered events (answers redeliveries without a call)."""
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
    crash_loop_limit: int = Field(3, ge=2, le=100)
    """Deaths of its own (taken in alone) a record may cause before it is answered ERROR
    unread (:mod:`service.intake.crash_loop`); a poison record costs one more, which only names the
    poll. At least 2: one kill from outside while a record is taken in alone never condemns it."""
    reply_topics: Annotated[tuple[str, ...] | None, NoDecode] = None
    """Allow-list of ``reply_to`` topics, ``*`` wildcards; unset: any topic not always refused
    (see :mod:`service.intake.topics`)."""
    # -- the Connector's edges (issue 22): Retry-After, its TLS and the network in front --
    retry_after_max_s: float = Field(60.0, ge=0, le=3600)
    """Longest ``Retry-After`` (on a 429 or 503) obeyed before the next attempt; a longer one
    is cut to this, so a server's hint cannot park a tenant for hours."""
    connector_ca_file: Path | None = None
    """CA bundle that replaces the default trust for the Connector's TLS (a corporate CA, a
    TLS-inspecting proxy); read at start-up."""
    connector_client_cert: Path | None = None
    """Client certificate (PEM; may hold its key too) shown to the Connector."""
    connector_client_key: Path | None = None
    """The client certificate's key (unencrypted PEM), when not in the certificate file."""

    @field_validator("connector_ca_file", "connector_client_cert", "connector_client_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    max_record_ids: int = Field(1_000, ge=1, le=100_000)
    """Most CRM records one change event may stand for (Salesforce merges one change to many
    records into one event); an event naming more is refused whole, at ``validation``."""
    schema_registry_url: str | None = None
    """A Confluent-compatible Schema Registry: values in its wire format are decoded with the
    schema it names (:mod:`service.registry`). Unset: such values are refused at ``parse``."""
    schema_registry_user: str | None = None
    schema_registry_password: SecretStr | None = None
    """Basic-auth credentials for the registry (Confluent Cloud: API key and secret)."""
    image_ttl_s: int = Field(400 * 24 * 3600, ge=3600)
    """How long a record image is kept after its last change (or seed): a contact edited once
    a year keeps its image, one never changed again goes, and so do ids a hostile producer
    invented."""
    image_max_bytes: int = Field(131_072, ge=1_024)
    """Largest record image kept (the mapped fields as JSON); a change that would make one
    bigger is refused (``validation``) and the image dropped. Capped at
    SAGEBRIDGE_MAX_EVENT_BYTES."""
    redis_prefix: str = "sagebridge"
    """Prefix of every Redis key, so several deployments (or tests) share one Redis safely."""
    log_level: str = "INFO"
    # Edges of "nothing lost, nothing twice" (issue 22): eviction, memory, replayed letters.
    redis_allow_eviction: bool = False
    """Start even though Redis's ``maxmemory-policy`` may evict keys (see
    :mod:`service.state.eviction`)."""
    max_in_flight_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    """Value bytes of consumed records not yet answered; past this the consumer stops fetching,
    as past ``max_in_flight`` records (:mod:`service.offsets.flow`)."""
    dlt_replayed_topic: str | None = None
    """Where ``dlt replay`` records what it replayed (compacted, keyed by each letter's place):
    ``<DLT_TOPIC>.replayed`` when unset. See :attr:`replayed_topic`."""

    @field_validator("dlt_replayed_topic")
    @classmethod
    def _replayed_topic_name(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_topic(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value

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

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError(
                "put the credentials in SAGEBRIDGE_SCHEMA_REGISTRY_USER and _PASSWORD, "
                "not in the URL (a URL is printed; the password would be too)"
            )
        return value.strip().rstrip("/")

    @field_validator("connector_url")
    @classmethod
    def _connector_url(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if (
            parts.scheme == "http"
            and not info.data.get("connector_allow_http")
            and not is_loopback(parts.hostname)
        ):
            raise ValueError(
                f"plain http:// to {parts.hostname} would send tokens in clear; use https://, "
                f"or set {ENV_PREFIX}CONNECTOR_ALLOW_HTTP=true"
            )
        return value

    @field_validator("http_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (0.0.0.0 or :: for all)") from None
        return value

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """The usual ``repr`` and ``str``, with the Redis URL's password masked."""
        for name, value in super().__repr_args__():
            yield name, masked_redis_url(value) if name == "redis_url" else value

    @field_validator("input_topics", "reply_topic", "dlt_topic")
    @classmethod
    def _topic_names(cls, value: Any) -> Any:
        names = value if isinstance(value, tuple) else (value,)
        for name in names:
            if not is_valid_topic(name):
                raise ValueError(f"{name!r} is not a valid Kafka topic name")
        return value

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

    @property
    def image_bound(self) -> int:
        """The image size bound in force: an image is rebuilt into one event's record."""
        return min(self.image_max_bytes, self.max_event_bytes)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: traffic that never leaves this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redis_passwords(url: str) -> list[str]:
    """The password a Redis URL carries (in its user part or a ``password`` parameter), as
    written and as redis-py decodes it; empty when it has none."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = {password, unquote(password)} if password else set()
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "password" and value:
            found |= {value, unquote_plus(value)}
    return sorted(found)


def masked_redis_url(url: str) -> str:
    """``url`` fit to print: its password, if any, masked."""
    return Redactor(redis_passwords(url)).text(url)


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
