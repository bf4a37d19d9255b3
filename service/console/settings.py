"""The console's own settings, apart from the service's (:class:`service.config.Settings`, which
it also reads for Kafka, Redis, topics and tenants).

Exactly one way to sign in must be configured: a password (a Secret, hashed on start) or the
name of the header a trusted proxy sets (oauth2-proxy, an SSO ingress). Neither means the
console refuses to start: a console open to anyone who reaches its port could replay letters
and settle unknown outcomes.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import SettingsError

ENV_PREFIX = "SAGEBRIDGE_CONSOLE_"


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    password: SecretStr | None = None
    trusted_proxy_header: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    audit_topic: str = Field(
        "sage.audit", validation_alias=AliasChoices("SAGEBRIDGE_AUDIT_TOPIC", "audit_topic")
    )
    session_hours: float = Field(12.0, gt=0)
    """How long a sign-in lasts without activity."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies whose ``X-Forwarded-Proto`` is believed (for the ``Secure`` cookie flag)."""
    max_letters: int = Field(500, ge=1)
    """Most letters a dead-letter page lists (the counts still cover every match)."""


def load_console_settings(**overrides: Any) -> ConsoleSettings:
    """The console's settings; :class:`SettingsError` with one line when unusable."""
    try:
        settings = ConsoleSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else ENV_PREFIX
        raise SettingsError(f"{name}: {first['msg']}") from None
    password = settings.password.get_secret_value() if settings.password else ""
    if not password and not settings.trusted_proxy_header:
        raise SettingsError(
            "the console needs a way to sign in: set SAGEBRIDGE_CONSOLE_PASSWORD "
            "or SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER"
        )
    if password and settings.trusted_proxy_header:
        raise SettingsError(
            "set only one of SAGEBRIDGE_CONSOLE_PASSWORD and "
            "SAGEBRIDGE_CONSOLE_TRUSTED_PROXY_HEADER"
        )
    return settings
