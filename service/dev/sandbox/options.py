"""The sandbox's start-up settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import DEFAULT_CONTRACTS_DIR


@dataclass(frozen=True)
class SandboxOptions:
    """Start-up settings; the fault fields are the initial faults (changeable at run time)."""

    host: str = "127.0.0.1"
    port: int = 8080
    """0 picks a free port (see :attr:`SandboxThread.port`)."""
    latency_ms: int = 0
    fail_rate: float = 0.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: int = 0
    store_then_fail_rate: float = 0.0
    store_then_fail_status: int = 502
    check_fencing: bool = False
    tokens: tuple[str, ...] = ("sandbox-token",)
    """``"TOKEN"`` (any tenant) or ``"TOKEN=CUSTOMER/COMPANY"`` (that tenant only)."""
    contracts_dir: Path = DEFAULT_CONTRACTS_DIR
    seed: int | None = None
    """Seed for fault randomness, so a rate below 1 gives the same sequence on every run."""
    tls_cert: Path | None = None
    """Serve HTTPS with this certificate (PEM; ``tls_key`` its key, if not in the same file):
    the Connector behind a corporate CA, for tests of the client's trust settings."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Require a client certificate signed by this CA (mutual TLS)."""

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    def tls_config(self) -> dict[str, Any]:
        """uvicorn's TLS settings for these options (none for plain HTTP)."""
        if self.tls_cert is None:
            return {}
        return {
            "ssl_certfile": str(self.tls_cert),
            "ssl_keyfile": str(self.tls_key) if self.tls_key is not None else None,
            "ssl_ca_certs": str(self.tls_client_ca) if self.tls_client_ca is not None else None,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if self.tls_client_ca is not None else ssl.CERT_NONE,
        }
