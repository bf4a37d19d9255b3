"""The sandbox's start-up settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
