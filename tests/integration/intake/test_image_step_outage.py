"""The image step when Redis stops answering: an image that missed a change is never used.

Two real stores behind one switch: the test's Redis, and one at a port nobody listens on (the
real connection error, turned into ``ImagesUnavailable`` by the store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
from pydantic import SecretStr
from redis.asyncio import Redis

from service.dev.salesforce import change_event, contracts_with_xref, created_contact, envelope
from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.image_rules import Image, ImageKey
from service.intake.image_step import ImageStep
from service.intake.routes import load_route_table
from service.intake.topics import ReplyTopics
from service.state.images import ImageStore
from service.state.keys import key
from service.tenants import Tenant, TenantDirectory

ACCOUNT, JANE, JOHN = "001Dn00000ACMEaIAG", "003Dn00000JANE1IAG", "003Dn00000JOHN2IAG"


class Switch:
    """The store the step sees: the working one, or the unreachable one while ``down``."""

    def __init__(self, up: ImageStore, down: ImageStore) -> None:
        self.up, self.down, self.is_down = up, down, False

    def _now(self) -> ImageStore:
        return self.down if self.is_down else self.up

    async def read_many(
        self, keys: Sequence[ImageKey]
    ) -> tuple[str | None, dict[ImageKey, Image | None]]:
        return await self._now().read_many(keys)

    async def write_many(
        self, epoch: str, changed: Mapping[ImageKey, Image | None], *, only_new: bool = False
    ) -> int:
        return await self._now().write_many(epoch, changed, only_new=only_new)


async def take(intake: Intake, step: ImageStep, payload: dict[str, object]) -> Admitted | Refused:
    decision = intake.admit(orjson.dumps(envelope("e", payload)))
    assert isinstance(decision, Imaging)
    [done] = await step.resolve([decision])
    return done


async def test_images_changed_while_redis_was_down_are_dropped_when_it_answers(
    tmp_path: Path, redis: Redis, redis_url: str, redis_prefix: str
) -> None:
    contracts = contracts_with_xref(
        tmp_path,
        accounts=[(ACCOUNT, "01", "ACME")],
        contacts=[(JANE, "JSMITH", "01", "ACME"), (JOHN, "JDOE", "01", "ACME")],
    )
    default = Tenant("1001", "ACME", SecretStr("t"))
    intake = Intake(
        load_route_table(contracts),
        TenantDirectory({default.key: default}, default),
        1_000_000,
        ReplyTopics("sage.replies", frozenset({"crm.events"}), "sage.dlt", None),
    )
    await redis.set(key(redis_prefix, "epoch"), "e1")  # as a running service established it
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    switch = Switch(ImageStore(redis, redis_prefix, 3600), ImageStore(unreachable, "x", 3600))
    step = ImageStep(intake, switch, 1 << 20)
    jane = key(redis_prefix, "image", "salesforce_contact", JANE)

    assert isinstance(await take(intake, step, created_contact(JANE, ACCOUNT)), Admitted)
    assert await redis.exists(jane)

    switch.is_down = True  # JANE's title changes while Redis does not answer
    title = change_event("UPDATE", [JANE], changed=["Title"], Title="Owner")
    assert isinstance(await take(intake, step, title), Admitted)  # sent without an image

    switch.is_down = False
    assert await redis.exists(jane)  # stale, but nobody could delete it yet
    assert isinstance(await take(intake, step, created_contact(JOHN, ACCOUNT)), Admitted)
    assert not await redis.exists(jane)  # dropped with the next write that worked

    rename = change_event("UPDATE", [JANE], changed=["Name.LastName"], Name={"LastName": "B"})
    refused = await take(intake, step, rename)
    assert isinstance(refused, Refused) and "sagebridge crm seed" in str(refused.outcome.message)
    await unreachable.aclose()
