"""Settings from the environment (and ``.env``), named exactly as SPEC lists them.

A bad value stops start-up with :class:`SettingsError`, whose text is one line naming the
variable — the first thing an operator reads in a crash-looping pod.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, unquote_plus, urlsplit

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.intake.reply_topics import TopicPatterns
from service.intake.routes import DEFAULT_CONTRACTS_DIR
from service.ops.redaction import Redactor

ENV_PREFIX = "SAGEBRIDGE_"

LEASE_MARGIN_S = 0.5
"""A transactional call starts only while the tenant lock's lease outlasts the call's own
timeout by this much (room for the moment between the check and the request leaving)."""


class SettingsError(ValueError):
    """A setting is missing or malformed; ``str()`` is one line naming the variable."""


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
    (see :mod:`service.intake.reply_topics`)."""
    redis_prefix: str = "sagebridge"
    """Prefix of every Redis key, so several deployments (or tests) share one Redis safely."""
    log_level: str = "INFO"

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


def known_secrets(settings: Settings, tenants: TenantDirectory) -> list[str]:
    """Every secret this deployment holds: the text masked in every log line."""
    found = [tenant.token.get_secret_value() for tenant in tenants.tenants.values()]
    if settings.kafka_sasl_password is not None:
        found.append(settings.kafka_sasl_password.get_secret_value())
    return found + redis_passwords(settings.redis_url)


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every Kafka client (consumer, producer, replay, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        import ssl

        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile is not None:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        if not (
            settings.kafka_sasl_mechanism
            and settings.kafka_sasl_username
            and settings.kafka_sasl_password
        ):
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_SASL_MECHANISM: SASL needs mechanism, username and password"
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


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


@dataclass(frozen=True, slots=True)
class Tenant:
    """A Sage customer + company connection, and the token that may write to it."""

    customer: str
    company: str
    token: SecretStr
    reply_topics: TopicPatterns | None = None
    """The topics its events may name as ``reply_to`` (tenants file); ``None``: the global rule."""
    key: tuple[str, str] = field(init=False)
    """``(customer, company)``: how lanes, locks and the ledger name the tenant."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.customer, self.company))

    def __repr__(self) -> str:  # never print the token, even by accident
        return f"Tenant(customer={self.customer!r}, company={self.company!r})"


@dataclass(frozen=True, slots=True)
class TenantDirectory:
    """The tenants this deployment may write to; events naming any other are refused."""

    tenants: dict[tuple[str, str], Tenant]
    default: Tenant | None

    def resolve(self, customer: str | None, company: str | None) -> Tenant | None:
        if customer is None and company is None:
            return self.default
        if customer is None or company is None:
            return None
        return self.tenants.get((customer, company))

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantDirectory:
        tenants: dict[tuple[str, str], Tenant] = {}
        default = None
        given = [settings.auth_token, settings.customer, settings.company]
        if any(v is not None for v in given):
            token = settings.auth_token.get_secret_value() if settings.auth_token else ""
            present = [token, settings.customer, settings.company]
            if not all(present):
                missing = next(
                    n
                    for n, v in zip(("AUTH_TOKEN", "CUSTOMER", "COMPANY"), present, strict=True)
                    if not v
                )
                raise SettingsError(
                    f"{ENV_PREFIX}{missing}: required when the default tenant is configured"
                )
            assert settings.auth_token and settings.customer and settings.company
            default = Tenant(settings.customer, settings.company, settings.auth_token)
            tenants[default.key] = default
        if settings.tenants_file is not None:
            for tenant in _read_tenants_file(settings.tenants_file):
                tenants[tenant.key] = tenant
        return cls(tenants=tenants, default=default)


def _read_tenants_file(path: Path) -> list[Tenant]:
    where = f"{ENV_PREFIX}TENANTS_FILE ({path})"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{where}: not valid YAML: {str(exc).splitlines()[0]}") from None
    entries = raw.get("tenants") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise SettingsError(f"{where}: expected 'tenants:' with a list of entries")
    tenants = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) and entry.get(k)
            for k in ("customer", "company", "token_env")
        ):
            raise SettingsError(f"{where}: entry {index} needs customer, company and token_env")
        token = os.environ.get(entry["token_env"])
        if not token:
            raise SettingsError(f"{entry['token_env']}: not set (token of tenants entry {index})")
        reply_topics = _tenant_reply_topics(entry.get("reply_topics"), f"{where}: entry {index}")
        tenants.append(Tenant(entry["customer"], entry["company"], SecretStr(token), reply_topics))
    return tenants


def _tenant_reply_topics(raw: Any, where: str) -> TopicPatterns | None:
    """A tenant's own ``reply_topics``: absent means the global rule; a list (even empty, which
    leaves only the default reply topic) replaces it."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise SettingsError(f"{where}: reply_topics must be a list of topic names")
    for pattern in raw:
        if not is_topic_pattern(pattern):
            raise SettingsError(f"{where}: reply_topics: {pattern!r} is not a topic name")
    return TopicPatterns.of(raw)
