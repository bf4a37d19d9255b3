"""Kafka's connection options (TLS, SASL), translated once from the settings.

Every Kafka client sagebridge makes — the group consumer (through FastStream), the reply
producer, ``dlt replay``, the admin client of the tests — connects with the same options.
aiokafka takes them as keyword arguments; FastStream wants a security object.
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from service.config import ENV_PREFIX, Settings
from service.errors import SettingsError


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every Kafka client (consumer, producer, replay, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
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


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The same TLS/SASL options as :func:`kafka_client_options`, in FastStream's terms."""
    options = kafka_client_options(settings)
    protocol: str = options["security_protocol"]
    use_ssl = protocol.endswith("SSL")
    context = options.get("ssl_context")
    if protocol.startswith("SASL"):
        mechanism = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[options["sasl_mechanism"]]
        return mechanism(
            options["sasl_plain_username"],
            options["sasl_plain_password"],
            ssl_context=context,
            use_ssl=use_ssl,
        )
    return BaseSecurity(ssl_context=context, use_ssl=True) if use_ssl else None
