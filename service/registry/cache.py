"""Schemas by id, fetched before intake reads the values that name them.

A schema id's schema never changes (the registry assigns a new id to a new schema), so an
answer is kept for the life of the process, including "the registry does not know this id":
a producer that writes an unknown id writes it again, and each of its records is refused at
``parse`` naming the id without another request. The cache grows by one entry per distinct
id any value on the input topics named; a hostile producer could name many, so ids the
registry does not know are kept only up to :data:`MAX_UNKNOWN` at a time.

While the registry cannot answer, :meth:`SchemaCache.ensure` waits and asks again (one log
line per attempt, the wait doubling up to :data:`MAX_WAIT_S`): the poll that needs the schema
is not taken in, so its records are neither refused nor dead-lettered, and fetching waits
with them, as it does for a Cloud Connector outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Protocol

from service.intake.wire import RegisteredSchema, UnusableSchema
from service.registry.client import RegistryUnavailable

log = logging.getLogger(__name__)

FIRST_WAIT_S = 0.5
MAX_WAIT_S = 30.0
MAX_UNKNOWN = 10_000


class SchemaSource(Protocol):
    async def schema(self, schema_id: int) -> RegisteredSchema | UnusableSchema: ...


class SchemaCache:
    """Owns the schemas fetched so far; :attr:`book` is what intake reads."""

    def __init__(self, source: SchemaSource, *, first_wait_s: float = FIRST_WAIT_S) -> None:
        self._source = source
        self._first_wait_s = first_wait_s
        self._book: dict[int, RegisteredSchema | UnusableSchema] = {}
        self._unknown = 0

    @property
    def book(self) -> Mapping[int, RegisteredSchema | UnusableSchema]:
        return self._book

    async def ensure(self, schema_ids: Collection[int]) -> None:
        """Return once every id in ``schema_ids`` has an answer in :attr:`book`."""
        for schema_id in schema_ids:
            if schema_id not in self._book:
                self._keep(schema_id, await self._fetch(schema_id))

    async def _fetch(self, schema_id: int) -> RegisteredSchema | UnusableSchema:
        wait_s, attempt = self._first_wait_s, 1
        while True:
            try:
                return await self._source.schema(schema_id)
            except RegistryUnavailable as exc:
                log.warning(
                    "Schema Registry unavailable; its records wait (nothing is refused)",
                    extra={"schema_id": schema_id, "attempt": attempt, "error": str(exc)},
                )
            await asyncio.sleep(wait_s)
            wait_s, attempt = min(wait_s * 2, MAX_WAIT_S), attempt + 1

    def _keep(self, schema_id: int, schema: RegisteredSchema | UnusableSchema) -> None:
        if isinstance(schema, UnusableSchema):
            if self._unknown >= MAX_UNKNOWN:
                for old in [k for k, v in self._book.items() if isinstance(v, UnusableSchema)]:
                    del self._book[old]
                self._unknown = 0
            self._unknown += 1
        self._book[schema_id] = schema
