"""A serial route with ``batch_max``: a replica killed while an array of invoices is inside the
Connector. Real replica processes, the real broker and Redis; the sandbox finishes the call
after its client died, as the real Connector does, and is the judge."""

from __future__ import annotations

from pathlib import Path

from service.dev.contracts import contracts_with_arrays
from service.dev.events import produce
from service.dev.sandbox.client import sandbox_get, sandbox_post
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import Topics
from tests.support.kafka import Collector
from tests.support.waiting import until
from tests.system.test_transactional_safety import ONE_COMPANY, assert_safe, invoices


async def test_a_replica_killed_with_an_array_in_flight_leaves_exactly_that_array_in_doubt(
    replicas, kafka_bootstrap: str, topics: Topics, collector: Collector, sandbox, tmp_path: Path
) -> None:
    """The killed replica's array is stored by the Connector after its client died: the next
    owner reports each of its records unknown_outcome and sends none again; the rest land."""
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 1500})
    settings = {"SAGEBRIDGE_CONTRACTS_DIR": str(contracts_with_arrays(tmp_path / "c", 10))}
    service = replicas(**settings)
    await service.wait_ready()
    await produce(kafka_bootstrap, topics.events, invoices(40, ONE_COMPANY))

    async def array_in_flight() -> bool:
        return (await sandbox_stats(sandbox))["in_progress_transactional"] == 1

    await until(array_in_flight, 60, "an array call inside the Connector")
    service.kill()
    await sandbox_post(sandbox, "/_sandbox/faults", {"latency_ms": 20})
    successor = replicas(**settings)
    await successor.wait_ready()
    final = await assert_safe(sandbox, collector, topics, 40, crashed=True)

    calls = (await sandbox_get(sandbox, "/_sandbox/calls"))["calls"]
    cut_off = calls[0]  # the call in flight at the kill: the first one the sandbox saw
    assert cut_off["outcome"] == "SUCCESS" and cut_off["records"] > 1, cut_off
    unknown = sorted(e for e, v in final.items() if v == ("ERROR", "unknown_outcome"))
    assert len(unknown) == cut_off["records"], (unknown, cut_off)
    assert all(v[0] == "SUCCESS" for e, v in final.items() if e not in unknown)
    assert sum(call["records"] for call in calls if call["outcome"] == "SUCCESS") == 40
    assert len(calls) < 40, "the invoices went out in arrays"
