"""Record images: what a mapping's ``image:`` says, and the image itself — data, no I/O.

A CDC UPDATE carries only the changed fields (a compound field's changed component alone), so
an element joined from several fields cannot be built from the event. A mapping with
``image: true`` (or an ``image:`` mapping of the options below) keeps each CRM record's last
*image*: the payload fields the mapping reads, with every change merged in. The merge and the
build live in :mod:`service.intake.images`; Redis in :mod:`service.state.images`.

Options (all optional; ``image: true`` takes the defaults)::

    image:
      nulled_fields: ChangeEventHeader.nulledFields   # fields an UPDATE set to null
      order: [ChangeEventHeader.commitTimestamp, ...] # the change's place in the record's history
      drop: [DELETE, "GAP_*"]                         # change types that drop the image
      seed_id: Id                                     # `crm seed`: the column with the record id
      seed_order: LastModifiedDate                    # `crm seed`: when the row was last changed
      compound:                                       # `crm seed`: flattened export columns
        Name: {FirstName: FirstName, LastName: LastName}

``order`` makes replays harmless: an image remembers the order of the change it is at, and a
change that is not newer is not merged (see :func:`newer`). Without it, changes merge in the
order they arrive, which Kafka keeps per record id but a dead-letter replay does not. A seeded
image is at ``(seed_order in epoch milliseconds,)``: a change committed in that millisecond or
later is newer (a shorter tuple sorts first), one from before it is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.errors import ContractFileError
from service.intake.mapping_sources import Context, Missing, Source, compile_source
from service.intake.xref import CrossReference

ImageKey = tuple[str, str]
"""``(mapping name, record id)``: whose image."""

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, slots=True)
class ImageRules:
    fields: frozenset[str]
    """The top-level payload fields the mapping's elements read: an image holds these only."""
    record_ids: str
    changed_fields: str
    """Dotted paths of the change feed's record ids and changed fields, rewritten per record
    when an event is built from its image."""
    nulled_fields: Source | None = None
    order: tuple[Source, ...] = ()
    drop: tuple[str, ...] = ("DELETE", "GAP_*")
    seed_id: str = "Id"
    seed_order: str | None = None
    """The export column saying when a row was last changed (ISO 8601 or epoch ms)."""
    compound: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Image field -> component -> the export column a flattened export carries it in."""

    def order_of(self, payload: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The change's place in its record's history; ``None`` if unordered or unknown."""
        if not self.order:
            return None
        ctx = Context(payload, None)
        found = [source.value(ctx) for source in self.order]
        if any(isinstance(v, Missing) or not isinstance(v, int | str) for v in found):
            return None
        return tuple(found)

    def nulled(self, payload: Mapping[str, Any]) -> frozenset[str]:
        found = self.nulled_fields.value(Context(payload, None)) if self.nulled_fields else None
        if not isinstance(found, list):
            return frozenset()
        return frozenset(n for n in found if isinstance(n, str))


@dataclass(frozen=True, slots=True)
class Image:
    """A CRM record's last known state: ``fields`` (a payload's top-level fields, compound
    ones as objects), the ``order`` of the change it is at, and ``unknown`` fields (an UPDATE
    sent them as a diff, so their value is no longer known)."""

    fields: dict[str, Any]
    order: tuple[Any, ...] | None = None
    unknown: frozenset[str] = frozenset()


def newer(change: tuple[Any, ...] | None, image: Image) -> bool:
    """Whether a change at ``change`` is to be merged into ``image``: yes unless both are
    ordered and the change is not after the image (a replay, or an older change replayed from
    the dead letters, must not roll the image back)."""
    if change is None or image.order is None:
        return True
    try:
        return change > image.order
    except TypeError:  # orders of different shapes (the mapping changed): arrival order
        return True


def load_image_rules(
    raw: Any,
    paths: Sequence[str],
    changes: tuple[Source, Source] | None,
    tables: Mapping[str, CrossReference],
    where: str,
) -> ImageRules | None:
    """The ``image:`` of a mapping file (``None`` if absent or false). ``paths`` are every
    payload path its elements read; ``changes`` its change feed's record-ids and
    changed-fields sources, which must be plain dotted paths."""
    if raw is None or raw is False:
        return None
    where = f"{where}: image"
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ContractFileError(f"{where}: true, or a mapping of image options")
    if extra := set(raw) - {"nulled_fields", "order", "drop", "seed_id", "seed_order", "compound"}:
        raise ContractFileError(f"{where}: unknown {sorted(extra)}")
    if changes is None:
        raise ContractFileError(f"{where}: needs a change feed (changes:) to merge")
    record_ids, changed = (_dotted(s, where) for s in changes)
    nulled = raw.get("nulled_fields")
    order = raw.get("order") or []
    if not isinstance(order, list):
        raise ContractFileError(f"{where}: order is a list of sources")
    compound = raw.get("compound") or {}
    if not isinstance(compound, dict) or not all(
        isinstance(c, dict) and all(isinstance(v, str) for v in c.values())
        for c in compound.values()
    ):
        raise ContractFileError(f"{where}: compound maps a field to component -> column")
    headers = {record_ids.split(".")[0], changed.split(".")[0]}
    return ImageRules(
        frozenset(p.split(".")[0] for p in paths) - headers,
        record_ids,
        changed,
        compile_source(nulled, tables, where) if nulled is not None else None,
        tuple(compile_source(s, tables, where) for s in order),
        tuple(str(d) for d in raw.get("drop", ("DELETE", "GAP_*"))),
        str(raw.get("seed_id", "Id")),
        str(raw["seed_order"]) if raw.get("seed_order") else None,
        {str(k): {str(c): str(col) for c, col in v.items()} for k, v in compound.items()},
    )


def epoch_ms(value: Any) -> int | None:
    """A time as CDC's ``commitTimestamp`` has it (epoch milliseconds): from epoch milliseconds
    or ISO 8601 text as Data Loader writes it (``2026-12-01T12:00:00.000Z``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _dotted(source: Source, where: str) -> str:
    paths = source.paths()
    if len(paths) != 1 or not _DOTTED.match(paths[0]):
        raise ContractFileError(
            f"{where}: the change feed's record_ids and changed_fields must be plain dotted "
            f"paths (a.b.c) for images, got {paths}"
        )
    return paths[0]
