"""What operators reach and read: the health server's address and the log level."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator


class OperationsSettings(BaseModel):
    http_port: int = Field(8000, ge=0, le=65535)
    http_host: str = "0.0.0.0"
    """Address the health server binds (``::`` for every IPv6 address, ``127.0.0.1`` for this
    machine only)."""
    log_level: str = "INFO"

    @field_validator("http_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (0.0.0.0 or :: for all)") from None
        return value
