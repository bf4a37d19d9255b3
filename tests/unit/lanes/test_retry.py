"""The one retry loop of both lanes: what it retries, how it treats an open breaker, and that
"gave up after N attempts" counts the calls really made, not the policy's maximum."""

from __future__ import annotations

from collections.abc import Callable

from service.connector.results import CallResult, Delivered, Rejected, Retryable, Unknown
from service.lanes.breaker import Breaker
from service.lanes.retry import Backoff, GaveUp, Retries, call_with_retries

NO_WAIT = Backoff(0.0)


def batch_like(max_attempts: int) -> Retries:
    return Retries(max_attempts, NO_WAIT, retry_unknown=True, wait_out_outage=True)


def serial_like(max_attempts: int) -> Retries:
    return Retries(max_attempts, NO_WAIT, retry_unknown=False, wait_out_outage=False)


class Connector:
    """Answers from a script, one per call; ``before`` runs just before the n-th answer."""

    def __init__(
        self, *answers: CallResult | None, before: dict[int, Callable[[], None]] | None = None
    ) -> None:
        self.answers = list(answers)
        self.before = before or {}
        self.calls = 0

    async def __call__(self) -> CallResult | None:
        answer = self.answers.pop(0)
        if answer is not None:
            self.calls += 1
            self.before.get(self.calls, lambda: None)()
        return answer


async def test_gave_up_counts_the_calls_made_while_the_breaker_was_open() -> None:
    # The second failure opens the breaker: that call uses none of the budget. Another call for
    # the tenant lands meanwhile and closes it, so the third failure ends the loop with three
    # calls made and a budget of two.
    breaker = Breaker(threshold=2, base_cooldown_s=0.0)
    connector = Connector(
        Retryable("429"),
        Unknown("timeout"),
        Retryable("429"),
        before={3: breaker.success},
    )
    result = await call_with_retries(connector, breaker, batch_like(max_attempts=2))
    assert isinstance(result, GaveUp)
    assert result == GaveUp(3, Retryable("429"))
    assert result.reason == "gave up after 3 attempts: 429"
    assert connector.calls == 3


async def test_gave_up_counts_the_calls_made_before_the_loop_ran() -> None:
    # A transactional record whose earlier lock hold ended when the breaker opened.
    breaker = Breaker(threshold=10, base_cooldown_s=0.0)
    connector = Connector(Retryable("429"), Retryable("503"))
    result = await call_with_retries(connector, breaker, serial_like(max_attempts=2), made=2)
    assert result == GaveUp(4, Retryable("503"))


async def test_an_unknown_outcome_is_resent_only_where_retries_allow_it() -> None:
    breaker = Breaker(threshold=10, base_cooldown_s=0.0)
    serial = await call_with_retries(
        Connector(Unknown("timeout"), Delivered({})), breaker, serial_like(max_attempts=5)
    )
    assert serial == Unknown("timeout")
    assert breaker.failures == 1, "an unknown outcome counts against the breaker"
    batch = await call_with_retries(
        Connector(Unknown("timeout"), Delivered({})), breaker, batch_like(max_attempts=5)
    )
    assert batch == Delivered({})
    assert breaker.failures == 0


async def test_an_answer_ends_the_loop_and_closes_the_breaker_count() -> None:
    breaker = Breaker(threshold=10, base_cooldown_s=0.0)
    result = await call_with_retries(
        Connector(Retryable("429"), Rejected("bad", whole_call=True)),
        breaker,
        serial_like(max_attempts=5),
    )
    assert result == Rejected("bad", whole_call=True)
    assert breaker.failures == 0


async def test_a_caller_that_must_not_wait_stops_when_the_breaker_opens() -> None:
    breaker = Breaker(threshold=1, base_cooldown_s=60.0)
    connector = Connector(Retryable("429"), Delivered({}))
    assert await call_with_retries(connector, breaker, serial_like(max_attempts=5)) is None
    assert connector.calls == 1 and breaker.is_open


async def test_no_call_started_means_no_verdict_and_nothing_counted() -> None:
    # E.g. the batch's records were withdrawn during the backoff.
    breaker = Breaker(threshold=10, base_cooldown_s=0.0)
    retrying: list[int] = []
    result = await call_with_retries(
        Connector(Retryable("429"), None),
        breaker,
        batch_like(max_attempts=5),
        on_retry=lambda failures, last, delay: retrying.append(failures),
    )
    assert result is None
    assert retrying == [1]
    assert breaker.failures == 1, "only the call made counts"


async def test_a_retry_waits_at_least_as_long_as_the_server_asked() -> None:
    """The backoff (here none) gives way to a longer ``Retry-After``; a shorter one changes
    nothing. The delay is read where the loop reports it, before it sleeps."""
    delays: list[float] = []
    connector = Connector(
        Retryable("429", retry_after_s=0.2), Retryable("503", retry_after_s=0.0), Delivered({})
    )
    result = await call_with_retries(
        connector,
        Breaker(threshold=5, base_cooldown_s=0.0),
        serial_like(max_attempts=5),
        on_retry=lambda failures, last, delay: delays.append(delay),
    )
    assert result == Delivered({})
    assert delays == [0.2, 0.0]


def test_a_breaker_opened_by_a_throttled_call_probes_no_sooner_than_the_server_asked() -> None:
    breaker = Breaker(threshold=1, base_cooldown_s=0.05)
    breaker.failure(not_before_s=7.0)
    assert breaker.is_open and breaker.cooldown_s == 7.0
