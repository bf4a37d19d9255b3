"""The service's calls out over HTTP: the Cloud Connector's client (with the network in front of
it), its posts timed per lane, its lookups held while a tenant is paused, and the Schema
Registry's client when one is configured."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from service.config import Settings
from service.connector.client import ConnectorClient, pool_size
from service.connector.lookup import Get, already_in_sage
from service.connector.network import connector_network
from service.connector.results import CallResult
from service.intake.routes import Route
from service.lanes.master_data import Lookup
from service.lanes.pause import PauseGate
from service.lanes.serial import FencedPost
from service.ops.metrics import Metrics
from service.registry import RegistryClient
from service.tenants import Tenant

log = logging.getLogger(__name__)


def connector_client(settings: Settings, companies: int) -> ConnectorClient:
    """The Connector's client, through the proxy and TLS the settings and ``*_PROXY`` ask for
    (logged once, so an operator sees which network the calls take), with a connection pool
    sized for ``companies`` unless ``SAGEBRIDGE_CONNECTOR_MAX_CONNECTIONS`` says otherwise."""
    network = connector_network(
        settings.connector_url,
        ca_file=settings.connector_ca_file,
        client_cert=settings.connector_client_cert,
        client_key=settings.connector_client_key,
        environ=os.environ,
    )
    if network.proxy is not None or network.ssl_context is not None:
        log.info("Cloud Connector calls use %s", network.shown())
    return ConnectorClient(
        settings.connector_url,
        settings.http_timeout_s,
        max_connections=settings.connector_max_connections or pool_size(companies),
        retry_after_max_s=settings.retry_after_max_s,
        network=network,
    )


def registry_client(settings: Settings) -> RegistryClient | None:
    """The Schema Registry's client; ``None`` when ``SAGEBRIDGE_SCHEMA_REGISTRY_URL`` is unset."""
    if settings.schema_registry_url is None:
        return None
    password = settings.schema_registry_password
    return RegistryClient(
        settings.schema_registry_url,
        user=settings.schema_registry_user,
        password=password.get_secret_value() if password is not None else None,
        timeout_s=settings.http_timeout_s,
    )


def timed_post(connector: ConnectorClient, metrics: Metrics, lane: str) -> FencedPost:
    """The Connector's post, its latency observed per lane, endpoint and result."""
    latency = metrics.connector_latency

    async def post(
        tenant: Tenant, endpoint: str, payload: bytes, *, fence: int | None = None
    ) -> CallResult:
        started = time.perf_counter()
        result = await connector.post(tenant, endpoint, payload, fence=fence)
        latency.labels(lane, endpoint, type(result).__name__).observe(time.perf_counter() - started)
        return result

    return post


def paused_read(connector: ConnectorClient, pauses: PauseGate) -> Get:
    """The Connector's list GET (a read), asked once the tenant is not paused: what both lanes'
    look-ups in Sage go through."""

    async def read(tenant: Tenant, endpoint: str, params: dict[str, str]) -> CallResult:
        await pauses.until_resumed(tenant.key)
        return await connector.get(tenant, endpoint, params)

    return read


def paused_lookup(read: Get) -> Lookup:
    """Whether Sage already has a master-data record, through ``read``."""

    async def lookup(tenant: Tenant, route: Route, record: dict[str, Any]) -> bool:
        return await already_in_sage(read, tenant, route, record)

    return lookup
