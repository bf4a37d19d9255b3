"""Memory for one event, measured with tracemalloc through the intake path (envelope, route,
tenant, record checks), for the worst shapes a producer can build: deep, wide, long keys, long
strings, many small values, big numbers. Both a table contract route and a free-form
(transactional) route. The peak stays a small multiple of the event's size; for a record that
is let through, fingerprinting it for the ledger and encoding it for the Cloud Connector stay
bounded too."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from service.config import load_settings
from service.intake.admit import Admitted, Intake
from service.intake.limits import MAX_DEPTH, MAX_VALUES
from service.intake.routes import load_route_table
from service.intake.topics import ReplyTopics
from service.state.ledger import fingerprint
from service.tenants import Tenant, TenantDirectory

PEAK_PER_BYTE = 48
"""Python objects cost more than their JSON text: an empty array is 2 bytes of JSON and a
56-byte list, an empty object a 64-byte dict. Every shape stays under this multiple."""
PEAK_OVERHEAD = 64 * 1024
ENCODE_PEAK = 512 * MAX_VALUES
"""``orjson.dumps`` reserves about 200 bytes per array element and 400 per object member while
it writes; the value limit bounds that."""
FREE_FORM, CONTRACT = "ar_invoice.create", "contact.upsert"
N = 20_000


def array(items: Callable[[int], Any], count: int) -> bytes:
    return orjson.dumps({"a": [items(i) for i in range(count)]})


def deep(levels: int, inner: bytes, key_chars: int = 74) -> bytes:
    """``levels`` objects, each with one long key, around ``inner`` (built as text: orjson
    would not encode it)."""
    head = b"".join(b'{"%s":' % f"{i:0{key_chars}d}".encode() for i in range(levels))
    return head + inner + b"}" * levels


SMALL_STRINGS = orjson.dumps([f"v{i % 1000:03d}" for i in range(N)])
SHAPES: dict[str, bytes] = {
    "400-levels-of-long-keys-around-an-array": deep(400, SMALL_STRINGS),  # issue 12's 592 MB
    "deep-to-the-limit-around-an-array": deep(MAX_DEPTH - 1, SMALL_STRINGS),
    "wide-object": orjson.dumps({f"k{i}": i for i in range(MAX_VALUES - 1)}),
    "wide-array-of-zeros": array(lambda i: 0, MAX_VALUES - 2),
    "empty-arrays": array(lambda i: [], MAX_VALUES - 2),
    "empty-objects": array(lambda i: {}, MAX_VALUES - 2),
    "long-keys": orjson.dumps({f"{i}" * 50_000: i for i in range(10)}),
    "long-strings": array(lambda i: "x" * 90_000, 10),
    "many-small-strings": array(lambda i: f"{i:x}", MAX_VALUES - 2),
    "big-numbers": array(lambda i: 1.7976931348623157e308 if i % 2 else 10**18 - i, N),
    "control-characters": array(lambda i: f"bell\x07{i}", N),
    "over-the-value-limit": array(lambda i: 0, 4 * MAX_VALUES),
}


@pytest.fixture(scope="module")
def intake() -> Intake:
    settings = load_settings()
    tenant = Tenant("1001", "ACME", SecretStr("token"))
    tenants = TenantDirectory({tenant.key: tenant}, tenant)
    return Intake(
        load_route_table(settings.contracts_dir),
        tenants,
        settings.max_event_bytes,
        ReplyTopics.from_settings(settings),
    )


def event(event_type: str, data: bytes) -> bytes:
    return b'{"event_id": "e-1", "type": "%s", "data": ' % event_type.encode() + data + b"}"


def widest_valid_contact(intake: Intake) -> bytes:
    """A contact with every element of its table at its longest."""
    route = intake.routes.get(CONTRACT)
    assert route is not None and route.contract is not None
    record = {
        name: "x" * element.max_chars
        if element.max_chars is not None
        else "9" * ((element.precision or 1) - (element.scale or 0))
        for name, element in route.contract.elements.items()
    }
    return orjson.dumps(record)


def peak_of(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


CASES = [(FREE_FORM, name) for name in SHAPES] + [(CONTRACT, name) for name in SHAPES]
CASES.append((CONTRACT, "widest-valid-contact"))


@pytest.mark.parametrize(("event_type", "shape"), CASES)
def test_peak_memory_of_one_event_is_a_small_multiple_of_its_size(
    intake: Intake, event_type: str, shape: str
) -> None:
    data = widest_valid_contact(intake) if shape == "widest-valid-contact" else SHAPES[shape]
    value = event(event_type, data)
    assert len(value) <= intake.max_event_bytes, "a shape the envelope would refuse unread"

    decisions: list[Any] = []
    admit_peak = peak_of(lambda: decisions.append(intake.admit(value)))
    assert admit_peak <= PEAK_PER_BYTE * len(value) + PEAK_OVERHEAD, (
        f"{shape}: {admit_peak / 2**20:.1f} MiB for a {len(value) / 1024:.0f} KiB event"
    )
    [decision] = decisions
    if isinstance(decision, Admitted):
        record = decision.event.data
        encode_peak = peak_of(lambda: (fingerprint(record), orjson.dumps([record])))
        assert encode_peak <= ENCODE_PEAK, f"{shape}: {encode_peak / 2**20:.1f} MiB to encode"


def test_the_worst_shapes_are_refused_as_validation_errors(intake: Intake) -> None:
    """The shapes over the limits are refused, each with its own clear reason."""
    expected = {
        "400-levels-of-long-keys-around-an-array": f"nested more than {MAX_DEPTH} levels deep",
        "over-the-value-limit": f"the record holds more than {MAX_VALUES} values",
        "control-characters": "control character at position 4",
    }
    for shape, reason in expected.items():
        decision = intake.admit(event(FREE_FORM, SHAPES[shape]))
        assert not isinstance(decision, Admitted), shape
        assert decision.outcome.stage == "validation" and reason in (decision.outcome.message or "")
