"""No secret the service holds reaches its log, a reply, a dead letter or /metrics.

The secrets are both tenants' tokens, the Kafka SASL password and the password of a Redis that
really requires it. The Cloud Connector is a stand-in that quotes the caller's token in every
ERROR it answers, so the token comes back to the service in text it passes on: the replies, the
dead-letter headers and the per-event log lines.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from service.dev.devstack import start_redis
from service.dev.events import contact, event, produce
from service.dev.topics import Topics
from tests.conftest import TOKEN
from tests.support.kafka import Collector
from tests.support.standin import echoing_the_token, serving
from tests.system.conftest import COMPANY_B, CUSTOMER_B, TOKEN_B

SASL_PASSWORD = "sasl-pass-4e81c0"
REDIS_PASSWORD = "redis-pass-b27f93"
SECRETS = (TOKEN, TOKEN_B, SASL_PASSWORD, REDIS_PASSWORD)


@pytest.fixture
def redis_with_password() -> Iterator[str]:
    """A private Redis that refuses clients without :data:`REDIS_PASSWORD`; yields its URL."""
    process = start_redis()
    try:
        with Redis(port=process.port) as admin:
            admin.config_set("requirepass", REDIS_PASSWORD)
        yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{process.port}/0"
    finally:
        process.stop()


async def test_secrets_never_reach_the_log_replies_dead_letters_or_metrics(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, redis_with_password: str
) -> None:
    tenant_b = {"customer": CUSTOMER_B, "company": COMPANY_B}
    messages: list[tuple[bytes | None, bytes | dict[str, object] | None]] = [
        *((f"c-{n}".encode(), event(f"c-{n}", contact(n))) for n in range(20)),
        *(
            (b"a", event(f"i-{n}", {"InvoiceNo": f"i-{n}"}, type="ar_invoice.create"))
            for n in range(5)
        ),
        *(
            (
                b"b",
                event(f"j-{n}", {"InvoiceNo": f"j-{n}"}, type="ar_invoice.create", tenant=tenant_b),
            )
            for n in range(5)
        ),
        (b"junk", b"not json"),
    ]
    async with serving(echoing_the_token()) as connector:
        service = replicas(
            SAGEBRIDGE_CONNECTOR_URL=connector,
            SAGEBRIDGE_REDIS_URL=redis_with_password,
            SAGEBRIDGE_KAFKA_SASL_USERNAME="sagebridge",
            SAGEBRIDGE_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
            SAGEBRIDGE_LOG_LEVEL="DEBUG",
        )
        await service.wait_ready()  # Redis answered the password-protected ping
        await produce(kafka_bootstrap, topics.events, messages)
        replies = await collector.wait_for(topics.replies, len(messages))
        dead = await collector.wait_for(topics.dlt, len(messages))
        async with httpx.AsyncClient(timeout=5) as client:
            metrics = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).content
        assert service.terminate() == 0
    log = service.log_path.read_bytes()

    refused = [r.json() for r in replies if r.json()["stage"] == "connector"]
    assert len(refused) == len(messages) - 1, "every record reached the Connector and was refused"
    assert all(r["message"].startswith("token *** is not valid here") for r in refused), refused
    assert b"token *** is not valid here" in log, "the echoed message was logged, masked"
    places = {"log": log, "/metrics": metrics}
    for n, message in enumerate(replies + dead):
        places[f"{message.topic}[{n}]"] = (message.value or b"") + b"".join(
            message.headers.values()
        )
    for secret in SECRETS:
        for place, text in places.items():
            assert secret.encode() not in text, f"{secret} reached {place}"
