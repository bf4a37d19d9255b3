"""Garbage collection for ``sagebridge run``: few automatic passes, and a bound on memory.

Each event allocates a few dozen short-lived objects (parsed JSON, tickets, replies) that
reference counting frees. With the default threshold (700) they still trigger a young-generation
pass every few events, each walking whatever is in flight, and every full pass walks all that
start-up built (modules, contracts, settings). So :func:`tune` freezes the start-up objects out
of the collector's way and raises the thresholds until automatic passes all but stop.

Without any full collection, though, the service's resident memory keeps rising under sustained
load, burst after burst, while its live Python objects stay flat; passes of the young
generations alone do not stop that, a full one does. :func:`collect_periodically` therefore runs
a full collection every :data:`FULL_COLLECTION_EVERY_S` on the event loop. It costs a short
pause (the frozen start-up objects are not walked) and keeps the peak flat. The figures, and the
options measured against each other, are in ``bench/RESULTS.md`` (the ``memory`` case).
"""

from __future__ import annotations

import asyncio
import gc

THRESHOLDS = (100_000, 50, 1000)
FULL_COLLECTION_EVERY_S = 2.0


def tune() -> None:
    """Freeze what exists now (call once start-up is done) and raise the thresholds."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


async def collect_periodically(every_s: float = FULL_COLLECTION_EVERY_S) -> None:
    """A full collection every ``every_s`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        gc.collect()
