"""The parts the demo runs the service against: Tansu, a Redis, the sandbox, two tenants."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from service.config import Settings, load_settings, masked_redis_url
from service.dev.demo.crm_feed import demo_contracts
from service.dev.demo.feed import ACME, BETA
from service.dev.devstack import redis_reachable, start_redis, start_tansu
from service.dev.replicas import write_tenants_file
from service.dev.sandbox import SandboxOptions, SandboxThread

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SANDBOX_LATENCY_MS = 2
BETA_TOKEN_ENV = "SAGEBRIDGE_DEMO_BETA_TOKEN"


@dataclass(frozen=True)
class Stack:
    """Where the demo's broker, Redis and sandbox are, and the tenants' tokens."""

    workdir: Path
    bootstrap: str
    redis_url: str
    sandbox: SandboxThread
    tokens: dict[tuple[str, str], str]


def start_stack(exits: contextlib.ExitStack, err: TextIO) -> Stack:
    """Start (and register for stopping) everything the service needs."""
    workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="sagebridge-demo-")))
    broker = start_tansu(workdir)
    exits.callback(broker.stop)
    bootstrap = f"127.0.0.1:{broker.port}"
    redis_url = _redis(exits, workdir)
    tokens = {tenant: f"demo-{secrets.token_hex(8)}" for tenant in (ACME, BETA)}
    grants = tuple(f"{token}={c}/{co}" for (c, co), token in tokens.items())
    sandbox = SandboxThread(
        SandboxOptions(port=0, tokens=grants, latency_ms=SANDBOX_LATENCY_MS, seed=7)
    ).start()
    exits.callback(sandbox.stop)
    shown = masked_redis_url(redis_url)
    err.write(f"demo: broker {bootstrap} (tansu), redis {shown}, sandbox {sandbox.url}\n")
    return Stack(workdir, bootstrap, redis_url, sandbox, tokens)


def _redis(exits: contextlib.ExitStack, workdir: Path) -> str:
    """The configured Redis, else the usual local one, else a throw-away one of our own."""
    for url in (os.environ.get("SAGEBRIDGE_REDIS_URL"), DEFAULT_REDIS_URL):
        if url and _reachable(url):
            return url
    process = start_redis(workdir)
    exits.callback(process.stop)
    return f"redis://127.0.0.1:{process.port}/0"


def _reachable(url: str) -> bool:
    try:
        return redis_reachable(url, timeout_s=0.5)
    except ValueError:  # not a Redis URL at all: treat like an unreachable one
        return False


def settings_for(stack: Stack, exits: contextlib.ExitStack) -> Settings:
    """The service's settings: the default tenant ACME and, from a tenants file, BETA."""
    entry = {"customer": BETA[0], "company": BETA[1], "token_env": BETA_TOKEN_ENV}
    tenants_file = write_tenants_file(stack.workdir / "tenants.yaml", entry)
    exits.enter_context(_env(BETA_TOKEN_ENV, stack.tokens[BETA]))
    return load_settings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        connector_url=stack.sandbox.url,
        auth_token=stack.tokens[ACME],
        customer=ACME[0],
        company=ACME[1],
        tenants_file=tenants_file,
        redis_prefix=f"sagebridge-demo-{secrets.token_hex(4)}",
        kafka_session_timeout_ms=3000,
        kafka_idempotence=False,
        http_port=0,
        log_level="WARNING",  # the summary is the demo's output, not one line per event
        contracts_dir=demo_contracts(stack.workdir),  # with the Salesforce look-up rows
    )


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
