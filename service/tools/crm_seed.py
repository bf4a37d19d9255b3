"""``sagebridge crm seed MAPPING FILE``: load a CRM export as record images, sending nothing.

A mapping that keeps record images can rebuild a joined element (a contact's name) on an
UPDATE only for records it has an image of; records last changed before sagebridge ran have
none. An export of their current state gives them one:

- **CSV as Salesforce Data Loader writes it**: a header row of field API names (Data Loader's
  export writes them in upper case: matched without regard to case), every value in double
  quotes, ``""`` for a quote inside one, ``""`` alone for null, UTF-8 (a byte-order mark is
  skipped). Compound fields come flattened (``FirstName``, ``MailingCity``): the mapping's
  ``image.compound`` says which column is which component. Values are kept as the export's text
  (dates as ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``), as a CDC event would carry them.
- **JSON lines**: one object per line, with nested compound fields (``"Name": {...}``, as a CDC
  event has them) or flattened ones like the CSV.

The record id is the ``image.seed_id`` column (``Id``). Only the fields the mapping reads are
kept. An existing image is kept unless ``--replace`` (it may already hold later changes than the
export). The file is streamed and written in pipelined batches, so hundreds of thousands of
rows take little memory; on a terminal a progress line shows rows/s and the time left,
otherwise one summary line is printed. Redis must hold an epoch (a running sagebridge
establishes it): seeding never creates one, which would hide a loss of Redis data.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

from service.config import Settings
from service.errors import ImagesUnavailable, ToolError
from service.intake.image_rules import Image, ImageKey, ImageRules, epoch_ms
from service.intake.images import image_bytes
from service.intake.routes import load_route_table
from service.state.client import connect as connect_redis
from service.state.images import ImageStore

BATCH_ROWS = 1_000
IN_FLIGHT = 4
"""Batches written at once: Redis works on one while the next is read from the file."""
PROGRESS_EVERY_S = 0.5


@dataclass
class SeedCount:
    rows: int = 0
    written: int = 0
    kept: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def skip(self, line: int, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < 5:
            self.problems.append(f"row {line}: {why}")


class Columns:
    """Export columns -> image fields, without regard to case (Data Loader upper-cases)."""

    def __init__(self, rules: ImageRules) -> None:
        self.seed_id = rules.seed_id.lower()
        self.seed_order = rules.seed_order.lower() if rules.seed_order else None
        self._plain = {f.lower(): f for f in rules.fields if f not in rules.compound}
        self._nested = {f.lower(): f for f in rules.compound}
        self._flat = {
            column.lower(): (name, component)
            for name, components in rules.compound.items()
            for component, column in components.items()
        }

    def image(self, row: Mapping[str, Any]) -> tuple[str | None, Image]:
        """The row's record id and image (empty text is null, and left out), at the row's
        last change when the export says (``image.seed_order``)."""
        record_id: str | None = None
        fields: dict[str, Any] = {}
        at: int | None = None
        for column, value in row.items():
            if value is None or value == "" or not isinstance(column, str):
                continue
            name = column.lower()
            if name == self.seed_id:
                record_id = str(value)
            elif name == self.seed_order:
                at = epoch_ms(value)
            if name in self._plain:
                fields[self._plain[name]] = value
            elif name in self._flat:
                field_name, component = self._flat[name]
                fields.setdefault(field_name, {})[component] = value
            elif name in self._nested and isinstance(value, dict):
                parts = {k: v for k, v in value.items() if v not in (None, "")}
                if parts:
                    fields.setdefault(self._nested[name], {}).update(parts)
        return record_id, Image(fields, None if at is None else (at,))


def read_rows(stream: TextIO, path: Path) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """``(row number, row)`` from the export, streamed; a row that is not an object is the
    reason it is skipped."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, f"not JSON: {exc}"
                continue
            yield number, row if isinstance(row, dict) else "not a JSON object"
        return
    for number, row in enumerate(csv.DictReader(stream), start=2):  # row 1 is the header
        yield number, row


class Progress:
    """A progress line on a terminal; nothing otherwise."""

    def __init__(self, out: TextIO, total_bytes: int) -> None:
        self._out = out
        self._total = max(1, total_bytes)
        self._tty = out.isatty()
        self._started = self._shown = time.monotonic()

    def show(self, rows: int, at_byte: int) -> None:
        now = time.monotonic()
        if not self._tty or now - self._shown < PROGRESS_EVERY_S:
            return
        self._shown = now
        elapsed = now - self._started
        done = min(1.0, at_byte / self._total)
        left = elapsed * (1 - done) / done if done > 0 else 0.0
        self._out.write(
            f"\r{rows:,} rows  {rows / max(elapsed, 1e-9):,.0f} rows/s  "
            f"{done:.0%}  {left:,.0f} s left   "
        )
        self._out.flush()

    def end(self) -> None:
        if self._tty:
            self._out.write("\r" + " " * 60 + "\r")


async def seed(
    settings: Settings,
    mapping_name: str,
    path: Path,
    *,
    replace: bool = False,
    out: TextIO,
    progress_to: TextIO,
) -> int:
    """Load ``path`` as images of ``mapping_name``; print a summary line; 1 if any row was
    skipped, else 0."""
    routes = load_route_table(settings.contracts_dir).routes.values()
    mapping = next(
        (r.mapping for r in routes if r.mapping and r.mapping.name == mapping_name), None
    )
    if mapping is None or mapping.image is None:
        raise ToolError(
            f"crm seed: mapping {mapping_name!r} keeps no record images "
            "(contracts/mappings/NAME.yaml with `image:`)"
        )
    try:
        raw: BinaryIO = path.open("rb")
        size = path.stat().st_size  # noqa: ASYNC240
    except OSError as exc:
        raise ToolError(f"crm seed: cannot read {path}: {exc.strerror}") from None
    redis = connect_redis(settings.redis_url, socket_timeout=30.0, socket_connect_timeout=2.0)
    store = ImageStore(redis, settings.redis_prefix, settings.image_ttl_s)
    started = time.monotonic()
    try:
        epoch = await store.epoch()
        if epoch is None:
            raise ToolError(
                "crm seed: Redis holds no epoch: start sagebridge once first (it "
                "establishes one, or declares a loss of data), then seed"
            )
        with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            count = await _load(
                store,
                epoch,
                mapping.name,
                mapping.image,
                text,
                path,
                replace,
                Progress(progress_to, size),
                raw,
                settings.image_bound,
            )
    except ImagesUnavailable as exc:
        raise ToolError(f"crm seed: cannot reach Redis: {exc}") from None
    finally:
        await redis.aclose()
    elapsed = max(time.monotonic() - started, 1e-9)
    for problem in count.problems:
        out.write(f"{problem}\n")
    out.write(
        f"seeded {mapping.name} from {path.name}: {count.rows} rows, {count.written} images "
        f"written, {count.kept} kept (had one already), {count.skipped} skipped; "
        f"{count.rows / elapsed:,.0f} rows/s\n"
    )
    return 1 if count.skipped else 0


async def _load(
    store: ImageStore,
    epoch: str,
    mapping_name: str,
    rules: ImageRules,
    text: TextIO,
    path: Path,
    replace: bool,
    progress: Progress,
    raw: BinaryIO,
    max_bytes: int,
) -> SeedCount:
    columns = Columns(rules)
    count = SeedCount()
    batch: dict[ImageKey, Image | None] = {}
    writing: set[asyncio.Task[int]] = set()

    async def flush() -> None:
        nonlocal batch
        if len(writing) >= IN_FLIGHT:
            done, _ = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                writing.discard(task)
                count.written += task.result()
        writing.add(asyncio.create_task(store.write_many(epoch, batch, only_new=not replace)))
        batch = {}

    for number, row in read_rows(text, path):
        count.rows += 1
        if isinstance(row, str):
            count.skip(number, row)
            continue
        record_id, image = columns.image(row)
        if record_id is None:
            count.skip(number, f"no {rules.seed_id} column value")
            continue
        if (size := image_bytes(image)) > max_bytes:
            count.skip(number, f"{record_id}: image of {size} bytes, over {max_bytes}")
            continue
        batch[(mapping_name, record_id)] = image
        if len(batch) >= BATCH_ROWS:
            await flush()
            progress.show(count.rows, raw.tell())
    if batch:
        await flush()
    for written in await asyncio.gather(*writing):
        count.written += written
    progress.end()
    count.kept = count.rows - count.skipped - count.written
    return count
