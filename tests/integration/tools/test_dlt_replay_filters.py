"""``sagebridge dlt replay`` with filters, through the command line against the real broker and
Redis: each filter picks its letters, each letter is replayed at most once (a second run with
the same filters replays 0), replaying one stage leaves the others to replay later,
``--dry-run`` sends and records nothing, and a long run reports progress."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from service.dev.topics import Topics, create_topics
from service.tools.dead_letters import iso
from tests.integration.tools.letters import START, Letter, sample, write
from tests.support.cli import sagebridge
from tests.support.kafka import everything_in


@pytest.fixture
async def letters(kafka_bootstrap: str, topics: Topics) -> None:
    await write(kafka_bootstrap, topics.dlt, topics.events, sample())


@pytest.fixture
async def target(kafka_bootstrap: str, topics: Topics) -> str:
    """Where ``--to`` sends the replays, to be read back."""
    name = f"{topics.events}-replayed"
    await create_topics(kafka_bootstrap, [name])
    return name


async def replayed_keys(bootstrap: str, topic: str) -> list[bytes | None]:
    return [r.key for r in await everything_in(bootstrap, topic)]


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        (["--stage", "unknown_outcome"], {b"inv-1"}),
        (["--tenant", "2002/BETA"], {b"beta-1"}),
        (["--event-id", "c-1", "--event-id", "inv-1"], {b"c-1", b"inv-1"}),
        (["--since", iso(START + timedelta(minutes=90))], {b"inv-1", b"junk"}),
        (["--until", iso(START + timedelta(minutes=90))], {b"c-1", b"beta-1"}),
        ([], {b"c-1", b"beta-1", b"inv-1", b"junk"}),
    ],
    ids=["stage", "tenant", "event-ids", "since", "until", "everything"],
)
async def test_each_filter_replays_its_letters_once(
    letters: None,
    service_env: dict[str, str],
    kafka_bootstrap: str,
    target: str,
    options: list[str],
    keys: set[bytes],
) -> None:
    first = await sagebridge(service_env, "dlt", "replay", "--to", target, *options)
    assert first.out.splitlines()[-1] == f"replayed {len(keys)} dead letter(s)"
    again = await sagebridge(service_env, "dlt", "replay", "--to", target, *options)
    assert again.out.splitlines()[-1] == "replayed 0 dead letter(s)"
    assert sorted(await replayed_keys(kafka_bootstrap, target)) == sorted(keys), "each once"


async def test_a_limit_replays_that_many_and_the_next_run_goes_on(
    letters: None, service_env: dict[str, str], kafka_bootstrap: str, target: str
) -> None:
    options = ["--to", target, "--stage", "validation", "--stage", "route", "--limit", "1"]
    runs = [await sagebridge(service_env, "dlt", "replay", *options) for _ in range(3)]
    assert [run.out.splitlines()[-1] for run in runs] == [
        "replayed 1 dead letter(s)",
        "replayed 1 dead letter(s)",
        "replayed 0 dead letter(s)",
    ]
    assert await replayed_keys(kafka_bootstrap, target) == [b"c-1", b"beta-1"]


async def test_replaying_one_stage_leaves_the_others_for_later(
    letters: None, service_env: dict[str, str], kafka_bootstrap: str, target: str
) -> None:
    await sagebridge(service_env, "dlt", "replay", "--to", target, "--stage", "unknown_outcome")
    rest = await sagebridge(service_env, "dlt", "replay", "--to", target)
    assert rest.out.splitlines()[-1] == "replayed 3 dead letter(s)"
    assert await replayed_keys(kafka_bootstrap, target) == [b"inv-1", b"c-1", b"beta-1", b"junk"]


async def test_a_dry_run_lists_and_sends_nothing(
    letters: None, service_env: dict[str, str], kafka_bootstrap: str, target: str, topics: Topics
) -> None:
    dry = await sagebridge(
        service_env, "dlt", "replay", "--to", target, "--stage", "route", "--dry-run"
    )
    *listed, last = dry.out.splitlines()
    assert last == "would replay 1 dead letter(s)"
    assert listed == [
        f"{iso(START + timedelta(hours=1))}  route  beta-1  {topics.dlt}@0:1 -> {target}"
    ]
    assert await replayed_keys(kafka_bootstrap, target) == []
    real = await sagebridge(service_env, "dlt", "replay", "--to", target, "--stage", "route")
    assert real.out.splitlines()[-1] == "replayed 1 dead letter(s)", "a dry run records nothing"


async def test_the_original_bytes_go_back_marked_with_their_dead_letter(
    letters: None, service_env: dict[str, str], kafka_bootstrap: str, target: str, topics: Topics
) -> None:
    await sagebridge(service_env, "dlt", "replay", "--to", target, "--event-id", "inv-1")
    [copy] = await everything_in(kafka_bootstrap, target)
    [original] = [letter for letter in sample() if letter.event_id == "inv-1"]
    assert (copy.key, copy.value) == (original.key, original.value)
    assert copy.headers["x-replayed-from"] == f"{topics.dlt}@0:2".encode()


async def test_a_long_run_reports_progress(
    service_env: dict[str, str], kafka_bootstrap: str, topics: Topics, target: str
) -> None:
    many = [
        Letter(f"k-{n}".encode(), b"{}", f"e-{n}", sample()[0].stage, START) for n in range(2100)
    ]
    await write(kafka_bootstrap, topics.dlt, topics.events, many)
    ran = await sagebridge(service_env, "dlt", "replay", "--to", target)
    progress = [line for line in ran.out.splitlines() if line.startswith("read ")]
    assert [int(line.split()[1]) // 1000 for line in progress] == [1, 2], ran.out
    assert ran.out.splitlines()[-1] == "replayed 2100 dead letter(s)"


async def test_redis_unreachable_is_one_line(service_env: dict[str, str]) -> None:
    env = {**service_env, "SAGEBRIDGE_REDIS_URL": "redis://127.0.0.1:1/0"}
    ran = await sagebridge(env, "dlt", "replay", ok=False)
    assert len(ran.err.splitlines()) == 1 and "cannot reach Redis" in ran.err, ran.err


async def test_letters_replayed_by_an_earlier_version_are_not_replayed_again(
    letters: None,
    service_env: dict[str, str],
    kafka_bootstrap: str,
    target: str,
    topics: Topics,
) -> None:
    """Earlier versions kept their progress as the committed offset of ``<group>-dlt-replay``:
    the first two letters were replayed by one of them."""
    earlier = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topics.group}-dlt-replay",
        enable_auto_commit=False,
    )
    await earlier.start()
    try:
        partition = TopicPartition(topics.dlt, 0)
        earlier.assign([partition])
        await earlier.commit({partition: 2})
    finally:
        await earlier.stop()
    ran = await sagebridge(service_env, "dlt", "replay", "--to", target)
    assert ran.out.splitlines()[-1] == "replayed 2 dead letter(s)"
    assert await replayed_keys(kafka_bootstrap, target) == [b"inv-1", b"junk"]
