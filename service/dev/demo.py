"""``sagebridge demo``: the whole pipeline on one machine, with nothing set up beforehand.

A newcomer should see sagebridge work — both lanes, good and bad records, two tenants — in one
command, without installing Kafka or writing configuration. So this starts an embedded
Kafka-compatible broker (Tansu), finds or starts a Redis, runs the Cloud Connector sandbox and
the service in this process, sends a deterministic sample CRM feed, waits for every reply, and
prints what happened. Everything started here is stopped here, whatever goes wrong.

The demo reports what the replies say; it knows nothing about how the lanes work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from service.config import Settings, load_settings, masked_redis_url
from service.dev.devstack import redis_reachable, start_redis, start_tansu
from service.dev.events import event, produce, tenant
from service.dev.processes import DevStackError
from service.dev.replicas import write_tenants_file
from service.dev.sandbox import SandboxOptions, SandboxThread
from service.dev.sandbox.client import stats as sandbox_stats
from service.dev.topics import create_topics

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REPLY_DEADLINE_S = 120.0
INPUT_PARTITIONS = 6
SANDBOX_LATENCY_MS = 2
BETA_TOKEN_ENV = "SAGEBRIDGE_DEMO_BETA_TOKEN"
ACME, BETA = ("1001", "ACME"), ("2002", "BETA")
STAGE_ORDER = ("validation", "parse", "route", "connector", "unknown_outcome")

# -- the sample feed -------------------------------------------------------------------------

FIRST_NAMES = (
    "Jane", "John", "Maria", "Wei", "Aisha", "Carlos", "Emily", "Omar",
    "Sofia", "Liam", "Priya", "Noah", "Hannah", "Mateo", "Grace", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Chen", "Okafor", "Muller", "Rossi", "Nguyen", "Patel",
    "Johnson", "Kowalski", "Haddad", "Larsen", "Silva", "Tanaka", "Brown", "Dubois",
)  # fmt: skip
COMPANIES = (
    "Summit Builders", "Riverbend Concrete", "Apex Roofing", "Bluestone Electric",
    "Cedar Framing", "Granite Plumbing", "Harbor Steel", "Ironwood HVAC",
)  # fmt: skip
CITIES = (
    ("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Portland", "OR", "97201"),
    ("Raleigh", "NC", "27601"), ("Phoenix", "AZ", "85004"), ("Boise", "ID", "83702"),
)  # fmt: skip
TITLES = ("Project Manager", "Estimator", "Site Supervisor", "Controller", "Owner", "Purchasing")
INVALID_KINDS = ("too_long", "missing_key", "unknown_field", "not_json", "unknown_type")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One Kafka message of the sample feed, and what the demo expects to hear back about it."""

    kind: str
    """``contact``, ``customer``, ``invoice`` or ``invalid:<what is wrong>``."""
    tenant: tuple[str, str]
    key: bytes
    value: bytes
    event_id: str | None
    """``None`` when the value is not JSON: its reply can carry no event_id."""


@dataclass(frozen=True, slots=True)
class _Customer:
    tenant: tuple[str, str]
    number: str
    name: str
    domain: str
    city: tuple[str, str, str]


class _FeedWriter:
    """Builds realistic records from a seeded RNG, so every run sends the same feed."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self.rng = rng
        self.customers = [
            _Customer(
                tenant,
                f"{company.split()[0].upper()[:6]}{index:02d}",
                company,
                company.replace(" ", "").lower() + ".com",
                rng.choice(CITIES),
            )
            for tenant in (ACME, BETA)
            for index, company in enumerate(COMPANIES, start=1)
        ]
        # A bounded pool of people, so some contacts are updated several times (same key).
        self.people = [self._person(n) for n in range(max(20, count // 4))]

    def _person(self, n: int) -> tuple[_Customer, str, str, str]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        code = f"{first[0]}{last}".upper()[:7] + f"{n % 1000:03d}"
        return self.rng.choice(self.customers), code, first, last

    def contact(self) -> tuple[_Customer, dict[str, Any]]:
        customer, code, first, last = self.rng.choice(self.people)
        city, state, zip_code = customer.city
        return customer, {
            "ARDivisionNo": "01",
            "CustomerNo": customer.number,
            "ContactCode": code,
            "ContactName": f"{first} {last}",
            "ContactTitle": self.rng.choice(TITLES),
            "EmailAddress": f"{first}.{last}@{customer.domain}".lower(),
            "TelephoneNo1": f"({self.rng.randint(201, 989)}) 555-{self.rng.randint(0, 9999):04d}",
            "City": city,
            "State": state,
            "ZipCode": zip_code,
        }

    def customer(self) -> tuple[_Customer, dict[str, Any]]:
        customer = self.rng.choice(self.customers)
        city, state, zip_code = customer.city
        return customer, {
            "ARDivisionNo": "01",
            "CustomerNo": customer.number,
            "CustomerName": customer.name,
            "City": city,
            "State": state,
            "ZipCode": zip_code,
            "EmailAddress": f"accounts@{customer.domain}",
        }

    def invoice(self, n: int) -> tuple[_Customer, dict[str, Any]]:
        customer = self.rng.choice(self.customers)
        amount = round(self.rng.uniform(150, 25_000), 2)
        return customer, {
            "InvoiceNo": f"INV-{n:06d}",
            "Amount": amount,
            "CustomerNo": customer.number,
        }


def sample_feed(count: int, seed: int = 7) -> list[FeedEvent]:
    """``count`` events: ~85% contacts, ~5% customers, ~5% AR invoices, ~5% invalid."""
    rng = random.Random(seed)
    writer = _FeedWriter(rng, count)
    feed = []
    for n in range(1, count + 1):
        roll = rng.random()
        if roll < 0.85:
            feed.append(_record_event(n, "contact", "contact.upsert", *writer.contact(), rng))
        elif roll < 0.90:
            feed.append(_record_event(n, "customer", "customer.upsert", *writer.customer(), rng))
        elif roll < 0.95:
            feed.append(_record_event(n, "invoice", "ar_invoice.create", *writer.invoice(n), rng))
        else:
            feed.append(_invalid_event(n, rng.choice(INVALID_KINDS), writer, rng))
    return feed


def _record_event(
    n: int,
    kind: str,
    event_type: str,
    customer: _Customer,
    data: dict[str, Any],
    rng: random.Random,
) -> FeedEvent:
    """An envelope keyed by the record's identity, so updates to one record keep their order."""
    event_id = f"crm-{n:06d}"
    named: dict[str, Any] = {}
    # Half of the default tenant's events name it; the rest rely on the default.
    if customer.tenant != ACME or rng.random() < 0.5:
        named["tenant"] = tenant(*customer.tenant)
    envelope = event(event_id, data, type=event_type, **named)
    identity = [
        data.get(k) or "" for k in ("InvoiceNo", "ARDivisionNo", "CustomerNo", "ContactCode")
    ]
    key = "/".join([*customer.tenant, event_type, *(str(part) for part in identity if part)])
    return FeedEvent(kind, customer.tenant, key.encode(), orjson.dumps(envelope), event_id)


def _invalid_event(n: int, what: str, writer: _FeedWriter, rng: random.Random) -> FeedEvent:
    """A mistake a real CRM feed makes; the service must answer it ERROR and dead-letter it."""
    customer, data = writer.contact()
    event_type = "contact.upsert"
    if what == "too_long":
        data["ContactName"] = "Maximiliana Alexandrovna Worthington-Smythe"
    elif what == "missing_key":
        del data["ContactCode"]
    elif what == "unknown_field":
        data["Nickname"] = "Max"
    elif what == "unknown_type":
        event_type = "contact.delete"
    event = _record_event(n, f"invalid:{what}", event_type, customer, data, rng)
    if what == "not_json":
        # A producer that cut the message short: not JSON, so no event_id can be read back.
        cut = event.value[: len(event.value) // 2]
        return FeedEvent(event.kind, event.tenant, event.key, cut, None)
    return event


# -- collecting the answers ------------------------------------------------------------------


@dataclass
class Tally:
    """Replies and dead letters seen so far, against what the feed expects."""

    expected_ids: set[str]
    unidentified: int
    """Events whose value is not JSON: their replies have ``event_id`` null."""
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    anonymous: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: set[tuple[bytes | None, bytes | None]] = field(default_factory=set)

    @classmethod
    def expecting(cls, feed: list[FeedEvent]) -> Tally:
        ids = {e.event_id for e in feed if e.event_id is not None}
        return cls(ids, sum(1 for e in feed if e.event_id is None))

    def take_reply(self, value: bytes | None) -> None:
        body = orjson.loads(value) if value else {}
        event_id = body.get("event_id")
        if event_id is None:
            self.anonymous.append(body)
        else:
            # After a rebalance a reply may repeat (SPEC); the first one counts.
            self.replies.setdefault(event_id, body)

    def take_dead_letter(self, headers: dict[str, bytes]) -> None:
        self.dead_letters.add(
            (headers.get("x-original-partition"), headers.get("x-original-offset"))
        )

    @property
    def answered(self) -> int:
        return len(self.replies.keys() & self.expected_ids) + min(
            len(self.anonymous), self.unidentified
        )

    @property
    def total(self) -> int:
        return len(self.expected_ids) + self.unidentified

    def bodies(self) -> list[dict[str, Any]]:
        return [*self.replies.values(), *self.anonymous]

    def errors(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if b.get("response") != "SUCCESS"]

    def complete(self) -> bool:
        return self.answered == self.total and len(self.dead_letters) >= len(self.errors())

    def missing(self) -> list[str]:
        return sorted(self.expected_ids - self.replies.keys())


class Progress:
    """Replies received so far: one line redrawn in place on a terminal, a line per quarter in
    a log (CI output must not fill with carriage returns)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.tty = stream.isatty()
        self.next_quarter = 1
        self.started = time.monotonic()

    def show(self, done: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        if self.tty:
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            rate = done / elapsed
            self.stream.write(f"\r  replies [{bar}] {done}/{self.total}  {rate:,.0f} events/s ")
            self.stream.flush()
            return
        if self.next_quarter <= 4 and done * 4 >= self.next_quarter * self.total:
            self.stream.write(f"  replies: {done}/{self.total} after {elapsed:.1f}s\n")
            self.stream.flush()
            self.next_quarter = done * 4 // self.total + 1

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def _collect(consumer: Any, settings: Settings, tally: Tally, progress: Progress) -> bool:
    """Read replies and dead letters until every event is answered; ``False`` at the deadline."""
    deadline = time.monotonic() + REPLY_DEADLINE_S
    while not tally.complete():
        if time.monotonic() > deadline:
            return False
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                if record.topic == settings.dlt_topic:
                    tally.take_dead_letter(dict(record.headers or ()))
                else:
                    tally.take_reply(record.value)
        progress.show(tally.answered)
    return True


# -- the summary -----------------------------------------------------------------------------


def summary_lines(
    feed: list[FeedEvent], tally: Tally, stats: dict[str, Any], wall_s: float
) -> list[str]:
    """The table printed at the end; plain text, one fact a line, so CI logs can grep it."""
    bodies = tally.bodies()
    errors = tally.errors()
    stages = Counter(str(b.get("stage")) for b in errors)
    tenants = Counter("/".join(e.tenant) for e in feed)
    kinds = Counter(e.kind.split(":")[0] for e in feed)
    calls, records = int(stats.get("calls", 0)), int(stats.get("records", 0))
    per_call = records / calls if calls else 0.0

    def row(label: str, value: object, note: str = "") -> str:
        return f"  {label:<30}{value!s:>8}{'   ' + note if note else ''}"

    lines = [
        "",
        "sagebridge demo: summary",
        row("events sent", len(feed), ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
        row("SUCCESS", len(bodies) - len(errors)),
        row("ERROR", len(errors)),
    ]
    lines += [row(f"  stage {s}", stages[s]) for s in _ordered(stages)]
    lines += [
        row("dead letters", len(tally.dead_letters)),
        row("tenants", len(tenants), ", ".join(f"{t} {n}" for t, n in sorted(tenants.items()))),
        row("connector calls", calls, f"batch calls {stats.get('batch_calls', 0)}"),
        row("records stored", records, f"{per_call:.1f} records per call"),
        row("max concurrent transactional", stats.get("max_concurrent_transactional", 0)),
        row("violations", stats.get("violations", 0)),
        row("wall time", f"{wall_s:.1f}s", f"{len(feed) / max(wall_s, 1e-6):,.0f} events/s"),
    ]
    examples = _examples(errors)
    if examples:
        lines += ["", "example ERROR replies:"]
        lines += ["  " + orjson.dumps(b).decode() for b in examples]
    return lines


def _ordered(stages: Counter[str]) -> list[str]:
    known = [s for s in STAGE_ORDER if stages[s]]
    return known + sorted(set(stages) - set(STAGE_ORDER))


def _examples(errors: list[dict[str, Any]], limit: int = 3) -> list[dict[str, Any]]:
    """One ERROR reply per stage (validation first), so the different shapes are visible."""
    chosen: dict[str, dict[str, Any]] = {}
    for body in sorted(errors, key=lambda b: str(b.get("event_id"))):
        chosen.setdefault(str(body.get("stage")), body)
    return [chosen[s] for s in _ordered(Counter(chosen))][:limit]


# -- the stack -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """Where the demo's broker, Redis and sandbox are, and the tenants' tokens."""

    workdir: Path
    bootstrap: str
    redis_url: str
    sandbox: SandboxThread
    tokens: dict[tuple[str, str], str]


def _start_stack(exits: contextlib.ExitStack, err: TextIO) -> Stack:
    """Start (and register for stopping) everything the service needs."""
    workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="sagebridge-demo-")))
    broker = start_tansu(workdir)
    exits.callback(broker.stop)
    bootstrap = f"127.0.0.1:{broker.port}"
    redis_url = _redis(exits, workdir)
    tokens = {tenant: f"demo-{secrets.token_hex(8)}" for tenant in (ACME, BETA)}
    grants = tuple(f"{token}={c}/{co}" for (c, co), token in tokens.items())
    sandbox = SandboxThread(
        SandboxOptions(port=0, tokens=grants, latency_ms=SANDBOX_LATENCY_MS, seed=7)
    ).start()
    exits.callback(sandbox.stop)
    shown = masked_redis_url(redis_url)
    err.write(f"demo: broker {bootstrap} (tansu), redis {shown}, sandbox {sandbox.url}\n")
    return Stack(workdir, bootstrap, redis_url, sandbox, tokens)


def _redis(exits: contextlib.ExitStack, workdir: Path) -> str:
    """The configured Redis, else the usual local one, else a throw-away one of our own."""
    for url in (os.environ.get("SAGEBRIDGE_REDIS_URL"), DEFAULT_REDIS_URL):
        if url and _reachable(url):
            return url
    process = start_redis(workdir)
    exits.callback(process.stop)
    return f"redis://127.0.0.1:{process.port}/0"


def _reachable(url: str) -> bool:
    try:
        return redis_reachable(url, timeout_s=0.5)
    except ValueError:  # not a Redis URL at all: treat like an unreachable one
        return False


def _settings(stack: Stack, exits: contextlib.ExitStack) -> Settings:
    """The service's settings: the default tenant ACME and, from a tenants file, BETA."""
    entry = {"customer": BETA[0], "company": BETA[1], "token_env": BETA_TOKEN_ENV}
    tenants_file = write_tenants_file(stack.workdir / "tenants.yaml", entry)
    exits.enter_context(_env(BETA_TOKEN_ENV, stack.tokens[BETA]))
    return load_settings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        connector_url=stack.sandbox.url,
        auth_token=stack.tokens[ACME],
        customer=ACME[0],
        company=ACME[1],
        tenants_file=tenants_file,
        redis_prefix=f"sagebridge-demo-{secrets.token_hex(4)}",
        kafka_session_timeout_ms=3000,
        kafka_idempotence=False,
        http_port=0,
        log_level="WARNING",  # the summary is the demo's output, not one line per event
    )


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings only: FastStream's and aiokafka's INFO lines would bury the progress line."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


# -- running ---------------------------------------------------------------------------------


async def _pipeline(settings: Settings, stack: Stack, feed: list[FeedEvent], err: TextIO) -> int:
    """Topics, the service, the feed in, the answers out; the summary on stdout."""
    from aiokafka import AIOKafkaConsumer

    from service.app import create_app
    from service.config import TenantDirectory

    bootstrap = settings.kafka_bootstrap
    await create_topics(bootstrap, settings.input_topics, INPUT_PARTITIONS)
    await create_topics(bootstrap, [settings.reply_topic, settings.dlt_topic])
    consumer = AIOKafkaConsumer(
        settings.reply_topic,
        settings.dlt_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    tally = Tally.expecting(feed)
    try:
        app, _ = create_app(settings, TenantDirectory.from_settings(settings))
        await app.start()
        try:
            err.write(f"demo: sending {len(feed)} events to {settings.input_topics[0]}\n")
            progress = Progress(tally.total, err)
            started = progress.started
            await produce(bootstrap, settings.input_topics[0], [(e.key, e.value) for e in feed])
            complete = await _collect(consumer, settings, tally, progress)
            wall_s = time.monotonic() - started
            progress.finish()
        finally:
            await app.stop()
    finally:
        await consumer.stop()
    stats = await sandbox_stats(stack.sandbox)
    print("\n".join(summary_lines(feed, tally, stats, wall_s)))
    if not complete:
        _report_missing(tally, err)
        return 1
    return 0


def _report_missing(tally: Tally, err: TextIO) -> None:
    missing = tally.missing()
    err.write(
        f"demo: gave up after {REPLY_DEADLINE_S:.0f}s: {tally.total - tally.answered} events "
        f"without a reply (e.g. {', '.join(missing[:5]) or 'unparseable ones'}), "
        f"{len(tally.dead_letters)} dead letters for {len(tally.errors())} errors\n"
    )


def run_demo(events: int = 3000) -> int:
    """Run the demo; 0 when every event was answered (and every ERROR dead-lettered)."""
    err = sys.stderr
    if events < 1:
        err.write("sagebridge demo: --events must be at least 1\n")
        return 2
    feed = sample_feed(events)
    with _quiet_logs(), contextlib.ExitStack() as exits:
        try:
            stack = _start_stack(exits, err)
        except DevStackError as exc:
            err.write(f"sagebridge demo: {exc}\n")
            return 1
        settings = _settings(stack, exits)
        return asyncio.run(_pipeline(settings, stack, feed, err))
