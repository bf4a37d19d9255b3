"""The tenants: the Sage companies this deployment writes to, and the token for each.

They come from ``SAGEBRIDGE_CUSTOMER``/``COMPANY``/``AUTH_TOKEN`` (the default tenant) and from
the tenants file (``SAGEBRIDGE_TENANTS_FILE``), where a tenant's token is named by an environment
variable (``token_env``) or by a file that is read again when it changes (``token_file``, see
:mod:`service.token_file`). Events name a tenant by customer and company;
intake looks it up here, so the token used for a call is always the configured one, never text
copied from an event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import SecretStr

from service.config import ENV_PREFIX, Settings, redis_passwords
from service.errors import SettingsError
from service.redaction import SecretSet
from service.token_file import TokenFile, TokenFileError
from service.topic_names import TopicPatterns, is_topic_pattern

MIN_TOKEN_CHARS = 8
"""Shorter tokens are refused at start-up: no real Cloud Connector token is that short, and every
known token is masked wherever it occurs in a log line, so a token such as ``t`` would mangle the
logs (every ``t`` masked) instead of protecting anything."""


class TenantKey(NamedTuple):
    """A Sage company's name: what events, lanes, breakers, locks, the ledger, metrics and the
    sandbox call a tenant. Unlike :class:`Tenant` it carries no token, so it may go anywhere."""

    customer: str
    company: str

    def __str__(self) -> str:
        return f"{self.customer}/{self.company}"


def parse_tenant_key(text: str) -> TenantKey:
    """``CUSTOMER/COMPANY`` as typed on a command line (the company may not contain ``/``);
    ValueError if either part is empty."""
    customer, slash, company = text.rpartition("/")
    if not (slash and customer and company):
        raise ValueError(f"expected CUSTOMER/COMPANY, got {text!r}")
    return TenantKey(customer, company)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A Sage customer + company this deployment may write to, and the token that may do it."""

    customer: str
    company: str
    token: SecretStr
    reply_topics: TopicPatterns | None = None
    """The topics its events may name as ``reply_to`` (tenants file); ``None``: the global rule."""
    token_file: TokenFile | None = None
    """Where the token is re-read from when it rotates; ``token`` then holds the first one."""
    key: TenantKey = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", TenantKey(self.customer, self.company))

    def secret(self) -> str:
        """The token to call with now (the token file's current one, if it has a file)."""
        if self.token_file is not None:
            return self.token_file.current()
        return self.token.get_secret_value()

    def __repr__(self) -> str:  # never print the token, even by accident
        return f"Tenant(customer={self.customer!r}, company={self.company!r})"


@dataclass(frozen=True, slots=True)
class TenantDirectory:
    """The tenants this deployment may write to; events naming any other are refused."""

    tenants: dict[TenantKey, Tenant]
    default: Tenant | None
    secrets: SecretSet = field(default_factory=SecretSet)
    """Every token read so far, token files' later ones included (see :func:`known_secrets`)."""

    @property
    def count(self) -> int:
        """How many companies this deployment may write to, the default tenant included."""
        keys = set(self.tenants)
        if self.default is not None:
            keys.add(self.default.key)
        return len(keys)

    def resolve(self, customer: str | None, company: str | None) -> Tenant | None:
        if customer is None and company is None:
            return self.default
        if customer is None or company is None:
            return None
        return self.tenants.get(TenantKey(customer, company))

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantDirectory:
        tenants: dict[TenantKey, Tenant] = {}
        default = None
        secrets = SecretSet()
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
            _refuse_short(token, f"{ENV_PREFIX}AUTH_TOKEN")
            default = Tenant(settings.customer, settings.company, settings.auth_token)
            tenants[default.key] = default
        if settings.tenants_file is not None:
            for tenant in _read_tenants_file(settings.tenants_file, secrets):
                tenants[tenant.key] = tenant
        return cls(tenants=tenants, default=default, secrets=secrets)


def _read_tenants_file(path: Path, secrets: SecretSet) -> list[Tenant]:
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
        given = [k for k in ("token_env", "token_file") if isinstance(entry, dict) and k in entry]
        if (
            not isinstance(entry, dict)
            or not all(
                isinstance(entry.get(k), str) and entry.get(k)
                for k in ("customer", "company", *given)
            )
            or len(given) != 1
        ):
            raise SettingsError(
                f"{where}: entry {index} needs customer, company and one of token_env, token_file"
            )
        reply_topics = _tenant_reply_topics(entry.get("reply_topics"), f"{where}: entry {index}")
        token_file = None
        if "token_file" in entry:
            token_file = _token_file(path.parent / entry["token_file"], index, secrets)
            token = token_file.current()
        else:
            token = _token_from_env(entry["token_env"], index)
        tenants.append(
            Tenant(
                entry["customer"],
                entry["company"],
                SecretStr(token),
                reply_topics,
                token_file=token_file,
            )
        )
    return tenants


def _token_from_env(name: str, index: int) -> str:
    token = os.environ.get(name)
    if not token:
        raise SettingsError(f"{name}: not set (token of tenants entry {index})")
    _refuse_short(token, f"{name} (token of tenants entry {index})")
    return token


def _token_file(path: Path, index: int, secrets: SecretSet) -> TokenFile:
    try:
        return TokenFile(path, MIN_TOKEN_CHARS, on_new=secrets.add)
    except TokenFileError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}TENANTS_FILE: entry {index}: token_file {path}: {exc}"
        ) from None


def _refuse_short(token: str, where: str) -> None:
    """SettingsError naming ``where`` (never the token) if ``token`` is too short to be real."""
    if len(token) < MIN_TOKEN_CHARS:
        raise SettingsError(
            f"{where}: too short to be a real token (at least {MIN_TOKEN_CHARS} characters)"
        )


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


def known_secrets(settings: Settings, tenants: TenantDirectory) -> SecretSet:
    """Every secret this deployment holds: the text masked in every log line. The set is live:
    a token re-read from its file later joins it (see :class:`~service.redaction.Redactor`)."""
    found = tenants.secrets
    for tenant in tenants.tenants.values():
        found.add(tenant.token.get_secret_value())
    if settings.kafka_sasl_password is not None:
        found.add(settings.kafka_sasl_password.get_secret_value())
    if settings.schema_registry_password is not None:
        found.add(settings.schema_registry_password.get_secret_value())
    for password in redis_passwords(settings.redis_url):
        found.add(password)
    return found
