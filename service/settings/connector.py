"""How the service reaches the Cloud Connector: its URL, the tenant it calls for when no
tenants file is given, the call's timeout, and the network in front of it (issue 22: its TLS,
``Retry-After``)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from service.settings import ENV_PREFIX


class ConnectorSettings(BaseModel):
    connector_allow_http: bool = False
    """Allow a plain ``http://`` Connector URL to a host other than this machine. Off, because
    every call carries a tenant's token in its headers. Declared before ``connector_url``,
    whose check reads it."""
    connector_url: str = "http://localhost:8080"
    auth_token: SecretStr | None = None
    customer: str | None = None
    company: str | None = None
    tenants_file: Path | None = None
    http_timeout_s: float = Field(30.0, gt=0)
    connector_max_connections: int | None = Field(None, ge=1)
    """Connections to the Cloud Connector, shared by every company; unset: 64 plus one per
    configured company, so each company's one-at-a-time call always finds one."""
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

    @field_validator("connector_ca_file", "connector_client_cert", "connector_client_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: traffic that never leaves this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
