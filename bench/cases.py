"""The benchmark's pipeline cases: real processes, fresh topics each, one number set per case.

Each case is named by what it measures (``--cases`` takes these names; ``serial`` selects the
three serial cases at once):

- ``ceiling``: a bare aiokafka consume -> reply loop, the most a Python Kafka service can do;
- ``batch``: the batch lane, ``BATCH_MAX`` 100;
- ``per-record``: the same contacts with one Connector call per record (``BATCH_MAX`` 1);
- ``serial-1r``, ``serial-3r``, ``serial-3r-2t``: the serial lane with 1 or 3 replicas and 1 or
  2 tenants, against a sandbox with a fixed latency;
- ``latency``: the serial lane against a Connector at a realistic latency, one record per call
  against arrays (:data:`LATENCY_CASES`, e.g. ``serial-200ms-array50-3r-3t``: 200 ms a call,
  arrays of up to 50 invoices, 3 replicas, 3 companies); each can be named alone;
- ``steady``: end-to-end latency at a steady rate below capacity;
- ``memory``: the service's peak RSS after each of several equal bursts;
- ``bytes``: the service's peak RSS against the bytes of large journals queued behind a paused
  company (``MAX_IN_FLIGHT_BYTES`` at its default), then every journal answered once resumed;
- ``companies``: one replica serving 1, 10 and 100 companies, transactional and master data
  (:mod:`bench.companies`; e.g. ``companies-100-serial``); each can be named alone.

The tenant lock itself (``lock``) is measured in :mod:`bench.lockbench`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from redis.asyncio import Redis

from bench import companies as scale
from bench import feed
from bench.companies import Company, Idle
from bench.feed import Message, Replies, Sent
from bench.stack import COMPANY, CUSTOMER, TOKEN, Stack, wait_file
from service.connector.client import ConnectorClient
from service.connector.results import Delivered
from service.dev.devstack import forget_keys
from service.dev.processes import Process, cpu_seconds, peak_rss_bytes
from service.dev.sandbox.client import stats
from service.dev.sandbox.process import SandboxProcess
from service.dev.topics import Topics
from service.state.pauses import PauseStore
from service.tenants import Tenant, TenantKey

CEILING = "ceiling"
BATCH = "batch"
PER_RECORD = "per-record"
SERIAL = "serial"
SERIAL_CASES = ("serial-1r", "serial-3r", "serial-3r-2t")
LATENCY = "latency"
STEADY = "steady"
MEMORY = "memory"
BYTES = "bytes"
LOCK = "lock"


@dataclass(frozen=True)
class AtLatency:
    """A serial case against a Connector answering in ``latency_ms``: ``array`` records per
    call at most (1: one at a time), ``tenants`` companies, ``replicas`` service processes."""

    latency_ms: int
    array: int
    tenants: int
    replicas: int

    @property
    def key(self) -> str:
        array = f"-array{self.array}" if self.array > 1 else ""
        tenants = f"-{self.tenants}t" if self.tenants > 1 else ""
        return f"{SERIAL}-{self.latency_ms}ms{array}-{self.replicas}r{tenants}"

    @property
    def ideal_per_s(self) -> float:
        """The ceiling of one call at a time per company: 1/latency calls, each full."""
        return 1000 / self.latency_ms * self.array * self.tenants


LATENCY_CASES = (
    AtLatency(50, 1, 1, 1),
    AtLatency(50, 10, 1, 1),
    AtLatency(50, 50, 1, 1),
    AtLatency(200, 1, 1, 1),
    AtLatency(200, 10, 1, 1),
    AtLatency(200, 50, 1, 1),
    AtLatency(50, 1, 1, 3),
    AtLatency(50, 50, 1, 3),
    AtLatency(200, 1, 3, 1),
    AtLatency(200, 50, 3, 3),
)
"""Ten of the 24 combinations of latency (50, 200 ms), array (1, 10, 50), companies (1, 3) and
replicas (1, 3), each about ten seconds of calls: the full latency x array square for one
company on one replica (what arrays buy, the goals' own comparison); 3 replicas at 50 ms, where
handing the lock between replicas costs the largest share of a call; 3 companies at 200 ms, one
at a time (companies run side by side); and arrays of 50 with 3 companies on 3 replicas, the
deployment the arrays are for. The other combinations repeat one of these effects."""
LATENCY_KEYS = tuple(case.key for case in LATENCY_CASES)
CASES = (
    CEILING,
    BATCH,
    PER_RECORD,
    SERIAL,
    *SERIAL_CASES,
    LATENCY,
    *LATENCY_KEYS,
    STEADY,
    LOCK,
    MEMORY,
    BYTES,
    scale.COMPANIES,
    *scale.KEYS,
)
"""What ``--cases`` accepts."""
SIDE_BY_SIDE = (CEILING, BATCH, PER_RECORD)
"""Run together in several rounds: the goals judge their ratios within a round."""
REPEATED = {
    AtLatency(50, 1, 1, 1).key: LATENCY,
    AtLatency(50, 1, 1, 3).key: LATENCY,
    scale.serial_key(scale.MOST): scale.COMPANIES,
}
"""Cases whose goal is a throughput of their own (one invoice per call at 50 ms, a hundred
companies), with the group that selects each: they run in every round too, and the goals judge
the median round's figure, because one run alone is at the mercy of the machine."""


def in_every_round(cases: Collection[str]) -> list[str]:
    """The cases ``cases`` selects that run in every round, in the order a round runs them."""
    chosen = [key for key in SIDE_BY_SIDE if key in cases]
    return chosen + [key for key, group in REPEATED.items() if key in cases or group in cases]


MIB = 1024 * 1024


def peak_rss_mb(pid: int) -> float:
    return peak_rss_bytes(pid) / MIB


def wants_serial(cases: Collection[str]) -> bool:
    """Whether ``cases`` selects any serial case (and so the call floor they are judged by)."""
    return SERIAL in cases or any(key in cases for key in SERIAL_CASES)


@dataclass(frozen=True)
class Plan:
    """How big each case is; ``quick`` is the smoke-test size."""

    events: int = 50_000
    per_record_events: int = 5_000
    invoices: int = 2_000
    steady_rate: float = 2_000.0
    steady_seconds: float = 10.0
    lock_iterations: int = 2_000
    handoff_seconds: float = 5.0
    batch_wait_ms: int = 200
    serial_latency_ms: int = 5
    latency_case_s: float = 10.0
    """Seconds of back-to-back calls per company each latency case sends, at the ideal."""
    floor_calls: int = 500
    burst: int = 200_000
    """Contacts per burst in the memory case; it sends :data:`BURSTS` of them."""
    journals: int = 500
    """Journals of about 240 KB the bytes case queues, in :data:`QUEUED_STEPS` steps."""
    idle_s: float = 5.0
    """The window in which the companies cases count an idle service's Redis commands."""
    quick: bool = False

    @classmethod
    def build(cls, quick: bool, events: int | None, burst: int | None = None) -> Plan:
        if quick:
            n = events or 300
            return cls(
                events=n,
                per_record_events=n,
                invoices=min(n, 100),
                steady_rate=300.0,
                steady_seconds=1.0,
                lock_iterations=200,
                handoff_seconds=1.0,
                floor_calls=50,
                latency_case_s=0.5,
                burst=burst or 1_000,
                journals=50,
                idle_s=1.0,
                quick=True,
            )
        n = events or cls.events
        return cls(
            events=n,
            per_record_events=max(1, min(n, cls.per_record_events, n // 10 or n)),
            burst=burst or cls.burst,
        )


@dataclass
class CaseResult:
    key: str
    title: str
    events: int
    received: int = 0
    seconds: float = float("nan")
    events_per_s: float = float("nan")
    calls: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    peak_rss_mb: float = float("nan")
    produce_s: float = float("nan")
    errors: int = 0
    replicas: int = 1
    ideal_per_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)
    call_ms: float = float("nan")
    """Mean Cloud Connector call time as the service measured it (its /metrics)."""
    lock_wait_ms: float = float("nan")
    """Mean wait for the tenant lock per acquisition (its /metrics; one per hold of the lock,
    which serves several calls)."""
    lock_wait_total_ms: float = float("nan")
    """All waits for the tenant lock together, over all replicas."""
    failure: str | None = None
    reader_holes: int = 0
    """Records Tansu skipped for the live reply reader, found by their offsets and read again."""
    rss_after_mb: list[float] = field(default_factory=list)
    """Peak RSS of the service once ready, then after each burst was answered (``bursts`` > 1),
    or, in the bytes case, after each step of journals was taken in."""
    queued_mb: list[float] = field(default_factory=list)
    """The bytes case: MB produced behind the paused company by each step (0 when ready)."""
    open_mb: list[float] = field(default_factory=list)
    """The bytes case: MB the service held open after each step (its in-flight bytes)."""
    companies: int = 0
    """The companies cases: how many companies the service served."""
    idle: Idle | None = None
    """The companies cases: the service once every company was idle."""

    @property
    def complete(self) -> bool:
        return self.failure is None and self.received >= self.events and self.errors == 0


@dataclass(frozen=True)
class Setup:
    """What one pipeline case runs: the service's overrides, or the ceiling loop instead."""

    key: str
    title: str
    feed: Sequence[Message]
    ceiling: bool = False
    replicas: int = 1
    sandbox_latency_ms: int = 0
    service_env: dict[str, str] = field(default_factory=dict)
    pace: float | None = None
    ideal_per_s: float | None = None
    bursts: int = 1
    """The feed is sent in this many equal bursts, each once the previous one is answered."""
    serial_array: int = 1
    """``batch_max`` of the AR invoice route (1: the shipped one-record-per-call route)."""
    queued: bool = False
    """The feed queues behind a paused company in :data:`QUEUED_STEPS` steps, then the company
    is resumed (the bytes case)."""
    companies: tuple[Company, ...] = ()
    """Served from a tenants file of their own, each with its token (the companies cases)."""
    idle_s: float = 0.0
    """After the last reply, how long to watch the idle service (0: not at all)."""


async def run_case(stack: Stack, setup: Setup) -> CaseResult:
    """Fresh topics, the processes of ``setup``, the feed in, every reply out, figures."""
    topics = Topics.fresh(setup.key)
    prefix = f"bench-{topics.group}"
    await topics.create(stack.bootstrap, feed.EVENT_PARTITIONS)
    started: list[Process] = []
    try:
        services, sandbox = await _start(stack, setup, topics, prefix, started)
        return await _measure(stack, setup, topics, services, sandbox, prefix)
    finally:
        stack.stop(*reversed(started))
        await forget_keys(stack.redis_url, prefix)


async def _start(
    stack: Stack, setup: Setup, topics: Topics, prefix: str, started: list[Process]
) -> tuple[list[Process], SandboxProcess | None]:
    """The ceiling loop, or a sandbox and the replicas; returns once all of them are ready."""
    if setup.ceiling:
        ceiling, ready_file = stack.start_ceiling(topics)
        started.append(ceiling)
        await wait_file(ceiling, ready_file)
        return [ceiling], None
    tokens = [c.token for c in setup.companies]
    sandbox = stack.start_sandbox(setup.sandbox_latency_ms, tokens)
    started.append(sandbox)
    env = stack.service_env(topics, sandbox, prefix, **setup.service_env)
    if setup.companies:
        env.update(scale.service_env(stack.log_dir, setup.companies))
    if setup.serial_array > 1:
        env["SAGEBRIDGE_CONTRACTS_DIR"] = str(stack.contracts_dir(setup.serial_array))
    replicas = [stack.start_service(env) for _ in range(setup.replicas)]
    started.extend(replicas)
    await asyncio.gather(*(replica.wait_ready(60.0) for replica in replicas))
    if setup.replicas > 1:
        await asyncio.sleep(0.5)  # let the last rebalance settle
    return [*replicas], sandbox


async def _measure(
    stack: Stack,
    setup: Setup,
    topics: Topics,
    services: list[Process],
    sandbox: SandboxProcess | None,
    prefix: str,
) -> CaseResult:
    result = CaseResult(setup.key, setup.title, len(setup.feed), replicas=setup.replicas)
    result.ideal_per_s = setup.ideal_per_s
    result.companies = len(setup.companies)
    assert stack.broker is not None
    watched: dict[str, list[int]] = {"service": [s.pid for s in services]}
    if sandbox is not None:
        watched["sandbox"] = [sandbox.pid]
    watched["broker"] = [stack.broker.pid]
    replies = await Replies(stack.bootstrap, topics.replies).start()
    producer = feed.new_producer(stack.bootstrap)
    try:
        await producer.start()
        cpu_before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in watched.items()}
        bench_before = time.process_time()
        ready_rss_mb = peak_rss_mb(services[0].pid)
        if setup.queued:
            queue = Queueing(stack.redis_url, prefix, services[0])
            sent = await queue.send(producer, topics.events, setup.feed, replies, result)
        else:
            sent = await _send(producer, topics.events, setup, replies, services, result)
        cpu_after = {name: sum(cpu_seconds(p) for p in pids) for name, pids in watched.items()}
        result.cpu_s = {name: cpu_after[name] - cpu_before[name] for name in watched}
        result.cpu_s["bench"] = time.process_time() - bench_before
        if sandbox is not None:
            await _scrape(services, result)
        if setup.idle_s and result.failure is None:
            service = services[0]
            result.idle = await scale.observe_idle(
                service.pid, service.port, stack.redis_url, setup.idle_s, ready_rss_mb
            )
    finally:
        await producer.stop()
        await replies.stop()
    result.peak_rss_mb = max(peak_rss_mb(s.pid) for s in services)
    result.received = len(replies.arrived)
    result.errors = replies.errors
    result.reader_holes = replies.holes
    if replies.arrived:
        result.seconds = max(replies.arrived.values()) - sent.first
        result.events_per_s = result.received / result.seconds
    latencies = feed.latencies_ms(sent, replies)
    result.p50_ms = feed.percentile(latencies, 50)
    result.p99_ms = feed.percentile(latencies, 99)
    result.calls = (await stats(sandbox))["calls"] if sandbox is not None else 0
    dead = [s for s in services if not s.alive()]
    if dead:
        result.failure = f"{dead[0].name} exited early:\n{dead[0].log_tail()}"
    return result


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    setup: Setup,
    replies: Replies,
    services: list[Process],
    result: CaseResult,
) -> Sent:
    """The feed, in ``setup.bursts`` bursts (or paced), each answered before the next; with
    several bursts, the service's peak RSS is read before the first and after each one."""
    if setup.pace is not None:
        sent = await feed.produce_paced(producer, topic, setup.feed, setup.pace)
        result.produce_s = sent.seconds
        if not await replies.wait_for(len(setup.feed), 60 + len(setup.feed) / 100):
            result.failure = f"only {len(replies.arrived)} of {len(setup.feed)} replies"
        return sent
    size = -(-len(setup.feed) // setup.bursts)
    sent = Sent()
    result.produce_s = 0.0
    if setup.bursts > 1:
        result.rss_after_mb.append(max(peak_rss_mb(s.pid) for s in services))
    for start in range(0, len(setup.feed), size):
        part = await feed.produce_burst(producer, topic, setup.feed[start : start + size])
        sent.join(part)
        result.produce_s += part.seconds
        wanted = min(len(setup.feed), start + size)
        if not await replies.wait_for(wanted, 60 + size / 100):
            result.failure = f"only {len(replies.arrived)} of {wanted} replies"
            break
        if setup.bursts > 1:
            result.rss_after_mb.append(max(peak_rss_mb(s.pid) for s in services))
    return sent


async def _scrape(services: list[Process], result: CaseResult) -> None:
    """Mean connector call time and lock wait over all replicas (from their /metrics)."""
    totals: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for service in services:
            try:
                text = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                name = line.split("{", 1)[0].split(" ", 1)[0]
                if name in _SCRAPED:
                    totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    for target, metric in (("call_ms", "connector_latency"), ("lock_wait_ms", "lock_wait")):
        count = totals.get(f"sagebridge_{metric}_seconds_count", 0.0)
        if count:
            seconds = totals.get(f"sagebridge_{metric}_seconds_sum", 0.0)
            setattr(result, target, seconds / count * 1000)
    result.lock_wait_total_ms = totals.get("sagebridge_lock_wait_seconds_sum", math.nan) * 1000


_SCRAPED = {
    f"sagebridge_{metric}_seconds_{part}"
    for metric in ("connector_latency", "lock_wait")
    for part in ("sum", "count")
}


@dataclass(frozen=True)
class CallFloor:
    """Sequential HTTP calls straight to the sandbox (the service's connector client): no Kafka,
    no Redis. ``1000 / mean_ms`` is the most any one-call-at-a-time lane can do here."""

    latency_ms: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    calls: int

    @property
    def per_s(self) -> float:
        return 1000 / self.mean_ms


async def call_floor(stack: Stack, latency_ms: int, calls: int) -> CallFloor:
    """Sequential calls through the service's own :class:`ConnectorClient`: what any
    one-at-a-time lane pays per record before Kafka and Redis add anything."""
    sandbox = stack.start_sandbox(latency_ms)
    tenant = Tenant(CUSTOMER, COMPANY, SecretStr(TOKEN))
    client = ConnectorClient(sandbox.url, 10.0)
    samples: list[float] = []
    try:
        for n in range(calls + 20):
            body = orjson.dumps({"InvoiceNo": f"F{n:06d}", "Amount": n})
            started = time.perf_counter()
            result = await client.post(tenant, "/accountsReceivable", body, fence=10**15 + n)
            elapsed = (time.perf_counter() - started) * 1000
            if not isinstance(result, Delivered):
                raise RuntimeError(f"floor call {n} failed: {result}")
            if n >= 20:  # the first calls open the connection and warm up
                samples.append(elapsed)
    finally:
        await client.aclose()
        stack.stop(sandbox)
    return CallFloor(
        latency_ms,
        feed.percentile(samples, 50),
        feed.percentile(samples, 99),
        sum(samples) / len(samples),
        len(samples),
    )


BURSTS = 3
QUEUED_STEPS = 5


@dataclass
class Queueing:
    """The bytes case's sending: a paused company, journals produced in steps (after each, the
    service takes in what it may; its peak RSS is read), then the company resumed."""

    redis_url: str
    prefix: str
    service: Process

    async def send(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        journals: Sequence[Message],
        replies: Replies,
        result: CaseResult,
    ) -> Sent:
        redis = Redis.from_url(self.redis_url)
        pauses = PauseStore(redis, self.prefix)
        company = TenantKey(CUSTOMER, COMPANY)
        try:
            await pauses.pause(company)
            await self._until(lambda m: m.get(_PAUSED, 0.0) == 1.0)
            result.queued_mb.append(0.0)
            result.open_mb.append(0.0)
            result.rss_after_mb.append(peak_rss_mb(self.service.pid))
            sent, size, produced = Sent(), -(-len(journals) // QUEUED_STEPS), 0
            for start in range(0, len(journals), size):
                step = journals[start : start + size]
                sent.join(await feed.produce_burst(producer, topic, step))
                produced += sum(len(value) for _, value in step)
                metrics = await self._until(_taken_in(start + len(step)))
                result.queued_mb.append(produced / MIB)
                result.open_mb.append(metrics.get("sagebridge_in_flight_bytes", 0.0) / MIB)
                result.rss_after_mb.append(peak_rss_mb(self.service.pid))
            await pauses.resume(company)
            if not await replies.wait_for(len(journals), 120 + len(journals)):
                result.failure = f"only {len(replies.arrived)} of {len(journals)} replies"
            return sent
        finally:
            await redis.aclose()

    async def _until(self, done: Callable[[dict[str, float]], bool]) -> dict[str, float]:
        """The service's metrics once ``done`` holds for them (read every 0.2 s, 120 s most)."""
        deadline = time.monotonic() + 120
        while True:
            metrics = await _metrics(self.service)
            if done(metrics) or time.monotonic() > deadline:
                return metrics
            await asyncio.sleep(0.2)


def _taken_in(produced: int) -> Callable[[dict[str, float]], bool]:
    """The service took in all it may: fetching paused, or every record produced is open."""

    def done(metrics: dict[str, float]) -> bool:
        paused = metrics.get("sagebridge_fetch_paused") == 1.0
        return paused or metrics.get("sagebridge_in_flight") == produced

    return done


_PAUSED = f'sagebridge_tenant_paused{{company="{COMPANY}",customer="{CUSTOMER}"}}'


async def _metrics(service: Process) -> dict[str, float]:
    """The service's unlabelled samples (and the paused gauge), by name."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def setups(plan: Plan, cases: Collection[str]) -> list[Setup]:
    """The pipeline cases selected by ``cases`` (names from :data:`CASES`), in order."""
    contacts = feed.contacts(plan.events)
    wait = str(plan.batch_wait_ms)
    latency = plan.serial_latency_ms
    per_tenant = 1000 / latency
    batch = {"SAGEBRIDGE_BATCH_MAX": "100", "SAGEBRIDGE_BATCH_WAIT_MS": wait}
    chosen: list[Setup] = []
    if CEILING in cases:
        chosen.append(Setup(CEILING, "bare aiokafka consume -> reply loop", contacts, ceiling=True))
    if BATCH in cases:
        chosen.append(
            Setup(BATCH, "sagebridge batch lane, BATCH_MAX 100", contacts, service_env=batch)
        )
    if PER_RECORD in cases:
        one_each = {"SAGEBRIDGE_BATCH_MAX": "1", "SAGEBRIDGE_BATCH_WAIT_MS": wait}
        chosen.append(
            Setup(
                PER_RECORD,
                "one call per record, BATCH_MAX 1",
                contacts[: plan.per_record_events],
                service_env=one_each,
            )
        )
    if wants_serial(cases):
        one, two = feed.invoices(plan.invoices), feed.invoices(plan.invoices, tenants=2)
        for key, replicas, tenants, invoices in zip(
            SERIAL_CASES, (1, 3, 3), (1, 1, 2), (one, one, two), strict=True
        ):
            if SERIAL not in cases and key not in cases:
                continue
            chosen.append(
                Setup(
                    key,
                    f"serial lane, {replicas} replica{'s' * (replicas > 1)}, "
                    f"{tenants} tenant{'s' * (tenants > 1)}, sandbox {latency} ms",
                    invoices,
                    replicas=replicas,
                    sandbox_latency_ms=latency,
                    ideal_per_s=per_tenant * tenants,
                )
            )
    chosen += _latency_setups(plan, cases)
    chosen += _company_setups(plan, cases)
    if STEADY in cases:
        steady = contacts[: int(plan.steady_rate * plan.steady_seconds)]
        if len(steady) < plan.steady_rate * plan.steady_seconds:
            steady = feed.contacts(int(plan.steady_rate * plan.steady_seconds))
        chosen.append(
            Setup(
                STEADY,
                f"steady {plan.steady_rate:,.0f} events/s for {plan.steady_seconds:g} s, "
                f"BATCH_WAIT_MS {wait}",
                steady,
                pace=plan.steady_rate,
                ideal_per_s=plan.steady_rate,
                service_env=batch,
            )
        )
    if MEMORY in cases:
        bursts = [m for n in range(BURSTS) for m in feed.contacts(plan.burst, burst=n)]
        chosen.append(
            Setup(
                MEMORY,
                f"service peak RSS after 1, 2 and {BURSTS} bursts of {plan.burst:,} contacts",
                bursts,
                service_env=batch,
                bursts=BURSTS,
            )
        )
    if BYTES in cases:
        chosen.append(
            Setup(
                BYTES,
                f"peak RSS against {plan.journals} journals of ~240 KB queued behind a paused "
                "company, MAX_IN_FLIGHT_BYTES default",
                feed.journals(plan.journals),
                sandbox_latency_ms=latency,
                queued=True,
            )
        )
    return chosen


def _latency_setups(plan: Plan, cases: Collection[str]) -> list[Setup]:
    """The :data:`LATENCY_CASES` selected by ``cases``, each sized to ``plan.latency_case_s``
    of calls per company at its ideal."""
    chosen = []
    for case in LATENCY_CASES:
        if LATENCY not in cases and case.key not in cases:
            continue
        calls = max(3, round(plan.latency_case_s * 1000 / case.latency_ms))
        array = "one invoice per call" if case.array == 1 else f"arrays of {case.array}"
        chosen.append(
            Setup(
                case.key,
                f"serial lane, {array}, sandbox {case.latency_ms} ms, "
                f"{case.replicas} replica{'s' * (case.replicas > 1)}, "
                f"{case.tenants} compan{'ies' if case.tenants > 1 else 'y'}",
                feed.invoices(calls * case.array * case.tenants, tenants=case.tenants),
                replicas=case.replicas,
                sandbox_latency_ms=case.latency_ms,
                ideal_per_s=case.ideal_per_s,
                serial_array=case.array,
            )
        )
    return chosen


def _company_setups(plan: Plan, cases: Collection[str]) -> list[Setup]:
    """The companies cases selected by ``cases``: per count, the serial lane one invoice per
    call at :data:`bench.companies.LATENCY_MS` (as many calls per company as a latency case),
    then master data (``plan.events`` contacts) spread over the same companies."""
    chosen = []
    per_company = max(3, round(plan.latency_case_s * 1000 / scale.LATENCY_MS))
    batch = {"SAGEBRIDGE_BATCH_MAX": "100", "SAGEBRIDGE_BATCH_WAIT_MS": str(plan.batch_wait_ms)}
    for count in scale.COUNTS:
        these = scale.companies(count)
        many = f"{count} compan{'ies' if count > 1 else 'y'}"
        if scale.COMPANIES in cases or scale.serial_key(count) in cases:
            chosen.append(
                Setup(
                    scale.serial_key(count),
                    f"serial lane, one invoice per call, sandbox {scale.LATENCY_MS} ms, "
                    f"1 replica, {many} in a tenants file",
                    scale.invoices(per_company, these),
                    sandbox_latency_ms=scale.LATENCY_MS,
                    ideal_per_s=1000 / scale.LATENCY_MS * count,
                    companies=these,
                    idle_s=plan.idle_s,
                )
            )
        if scale.COMPANIES in cases or scale.batch_key(count) in cases:
            chosen.append(
                Setup(
                    scale.batch_key(count),
                    f"batch lane, contacts spread over {many}, BATCH_MAX 100",
                    scale.contacts(plan.events, these),
                    service_env=batch,
                    companies=these,
                    idle_s=plan.idle_s,
                )
            )
    if scale.COMPANIES in cases or scale.replicas_key() in cases:
        these = scale.companies(scale.MOST)
        chosen.append(
            Setup(
                scale.replicas_key(),
                f"serial lane, one invoice per call, sandbox {scale.LATENCY_MS} ms, "
                f"{scale.REPLICAS} replicas, {scale.MOST} companies in a tenants file",
                scale.invoices(per_company, these),
                replicas=scale.REPLICAS,
                sandbox_latency_ms=scale.LATENCY_MS,
                ideal_per_s=1000 / scale.LATENCY_MS * scale.MOST,
                companies=these,
            )
        )
    return chosen
