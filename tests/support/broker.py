"""The Kafka-protocol broker tests run against: ``SAGEBRIDGE_TEST_KAFKA`` if set, else a Tansu
started here on a free port and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from service.dev.devstack import start_tansu


@contextmanager
def broker_for_tests() -> Iterator[str]:
    given = os.environ.get("SAGEBRIDGE_TEST_KAFKA")
    if given:
        yield given
        return
    broker = start_tansu()
    try:
        yield f"127.0.0.1:{broker.port}"
    finally:
        broker.stop()
