"""The sandbox's latency is a call's whole time at the server, its own handling included."""

from __future__ import annotations

from service.dev.sandbox.injection import wait_left


def test_the_wait_is_what_is_left_of_the_latency_since_the_call_arrived() -> None:
    assert abs(wait_left(received_s=100.0, latency_ms=50, now_s=100.0) - 0.050) < 1e-9
    assert abs(wait_left(received_s=100.0, latency_ms=50, now_s=100.002) - 0.048) < 1e-9
    assert wait_left(received_s=100.0, latency_ms=50, now_s=100.07) == 0.0  # handling took longer
