"""Waiting for Kafka at start-up: pods often start before the broker.

``sagebridge run`` starts its reply producer before it joins the consumer group; while no
bootstrap server answers, that start is tried again every ``retry_s`` with one log line per
attempt, the health server already up (``/healthz`` 200, ``/readyz`` 503: not assigned). After
``wait_s`` (``SAGEBRIDGE_STARTUP_WAIT_S``) it gives up with :class:`KafkaUnreachable`, one line
and a non-zero exit, so an orchestrator's restart policy takes over.

Each attempt is bounded by the time left: a peer that accepts the connection and never answers
(a hung broker, a wrong port that swallows packets) would otherwise hold one attempt for the
client's own request timeout, and the wait would outlast the setting that promises to bound it.

aiokafka logs every refused bootstrap connection at ERROR level itself; while this wait runs
those lines are held back, because the attempt line already says the same once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from aiokafka.errors import KafkaError

from service.errors import StartupError

log = logging.getLogger(__name__)

RETRY_S = 2.0

_AIOKAFKA_BOOTSTRAP_NOISE = ("Unable connect to", "Unable to request metadata from")


class KafkaUnreachable(StartupError):
    """No bootstrap server answered within ``SAGEBRIDGE_STARTUP_WAIT_S``."""

    what = "cannot start"


async def start_when_reachable(
    start: Callable[[], Awaitable[None]],
    *,
    bootstrap: str,
    wait_s: float,
    retry_s: float = RETRY_S,
) -> None:
    """Call ``start`` until it connects, or raise :class:`KafkaUnreachable` after ``wait_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    attempt = 0
    with _quiet_bootstrap_errors():
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    await start()
            except (KafkaError, OSError) as exc:  # TimeoutError is an OSError
                left = deadline - loop.time()
                if left <= 0:
                    raise KafkaUnreachable(
                        f"Kafka not reachable at {bootstrap} (SAGEBRIDGE_KAFKA_BOOTSTRAP) after "
                        f"{wait_s:g} s (SAGEBRIDGE_STARTUP_WAIT_S); giving up"
                    ) from None
                log.warning(
                    "Kafka not reachable yet; retrying",
                    extra={
                        "bootstrap": bootstrap,
                        "attempt": attempt,
                        "error": type(exc).__name__,
                        "gives_up_in_s": round(left),
                    },
                )
                await asyncio.sleep(min(retry_s, left))
            else:
                if attempt > 1:
                    log.info("Kafka reachable", extra={"bootstrap": bootstrap, "attempt": attempt})
                return


class _BootstrapNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str) and record.msg.startswith(_AIOKAFKA_BOOTSTRAP_NOISE)
        )


@contextlib.contextmanager
def _quiet_bootstrap_errors() -> Iterator[None]:
    logger, noise = logging.getLogger("aiokafka"), _BootstrapNoise()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)
