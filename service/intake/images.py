"""Merging a CRM change into its record's image, and building the Sage record from it. Pure.

For a mapping with ``image:`` (:mod:`service.intake.image_rules`), one change event:

- CREATE / UNDELETE (the mapping's ``whole`` types): the image becomes the payload's fields.
- UPDATE (``changed_only``): the fields ``changedFields`` names (``Phone``, or a compound
  field's component, ``Name.LastName``) are merged into the image and the fields
  ``nulledFields`` names are cleared; fields sent as a diff (``diffFields``) become unknown.
  The Sage record is then built from the merged image: the keys, and every element one of
  whose fields changed, rebuilt whole (``ContactName`` from the image's first name and the
  event's last name). Untouched elements are left out, as before, so Sage keeps them.
- DELETE and GAP_* (``drop``): the image is dropped (a gap means Salesforce lost the change,
  so the image can no longer be trusted); the event is then refused as before.

A change that is not newer than the image (see :func:`~service.intake.image_rules.newer`) is
not merged: the record is built from the image as it is, which already holds the change or a
later one, so Sage is never sent an older state. An UPDATE for a record without an image is
built from the event alone, as without images; if an element cannot be rebuilt it is refused
with a hint to load images with ``sagebridge crm seed``. An image is never made from an UPDATE.

The images a poll needs are read before and written after, in one round trip each
(:mod:`service.intake.image_step`); here they are a plain :class:`ImageBook`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from collections.abc import Mapping as MappingOf
from dataclasses import replace
from typing import Any

import orjson

from service.answers.outcomes import Stage
from service.intake.image_rules import Image, ImageKey, ImageRules, newer
from service.intake.mapping_sources import Context
from service.intake.mappings import Mapped, Mapping, Unmapped


class ImageBook:
    """One poll's images: as read from the store, then as the poll's changes leave them.
    ``available`` is ``False`` when the store could not be read (nothing is then written)."""

    def __init__(self, found: MappingOf[ImageKey, Image | None], *, available: bool = True):
        self._images: dict[ImageKey, Image | None] = dict(found)
        self.available = available
        self.changed: dict[ImageKey, Image | None] = {}
        """Images to write (``None``: to delete), in the order they changed."""

    def get(self, key: ImageKey) -> Image | None:
        return self._images.get(key)

    def put(self, key: ImageKey, image: Image | None) -> None:
        """``image`` is now ``key``'s; to be written, or deleted when the store was not
        readable (the stored one missed this change)."""
        self._images[key] = image
        self.changed[key] = image if self.available else None


def image_keys(mapping: Mapping, payload: MappingOf[str, Any]) -> list[ImageKey]:
    """The images an event needs (none if its record ids are unreadable: the mapping refuses
    it then, as without images)."""
    ids = _record_ids(mapping, payload)
    return [(mapping.name, record_id) for record_id in ids or ()]


def image_bytes(image: Image) -> int:
    """An image's size as stored (what ``SAGEBRIDGE_IMAGE_MAX_BYTES`` bounds)."""
    return len(orjson.dumps(image.fields))


def build(
    mapping: Mapping, payload: MappingOf[str, Any], book: ImageBook, max_bytes: int
) -> Mapped | Unmapped:
    """Merge one change event into its records' images in ``book`` and build their Sage
    records from them (see the module docstring)."""
    rules, changes = mapping.image, mapping.changes
    assert rules is not None and changes is not None, "only mappings with images"
    # One shape before merging, whichever the producer wrote (compound fields nested), so an
    # image built from the Confluent connector's flattened records merges like Salesforce's.
    record = mapping.crm_record(payload)
    if isinstance(record, Unmapped):
        return record
    payload = record
    change = changes.type.value(Context(payload, None))
    ids = _record_ids(mapping, payload)
    if not isinstance(change, str) or ids is None:
        return mapping.apply(payload)
    order = rules.order_of(payload)
    if any(fnmatch.fnmatchcase(change, pattern) for pattern in rules.drop):
        for record_id in ids:
            image = book.get((mapping.name, record_id))
            if image is not None and newer(order, image):
                book.put((mapping.name, record_id), None)
        return mapping.apply(payload)
    whole = change in changes.whole
    if not whole and change not in changes.changed_only:
        return mapping.apply(payload)
    built: list[tuple[str | None, dict[str, Any]]] = []
    refusals: list[Unmapped] = []
    for record_id in ids:
        one = _one(mapping, rules, payload, record_id, whole, order, book, max_bytes)
        if isinstance(one, Unmapped):
            refusals.append(one)
        else:
            built.extend(one.records)
    if refusals:
        return Unmapped(
            refusals[0].stage,
            "; ".join(r.message for r in refusals[:10]),
            tuple(e for r in refusals for e in r.errors),
        )
    return Mapped(built)


def _one(
    mapping: Mapping,
    rules: ImageRules,
    payload: MappingOf[str, Any],
    record_id: str,
    whole: bool,
    order: tuple[Any, ...] | None,
    book: ImageBook,
    max_bytes: int,
) -> Mapped | Unmapped:
    key = (mapping.name, record_id)
    image = book.get(key)
    changed = _changed(mapping, payload) | rules.nulled(payload)
    if image is None and not whole:
        if not book.available:
            book.put(key, None)  # whatever is stored misses this change
        alone = mapping.apply(_with(payload, rules.record_ids, [record_id]))
        partial = _half_changed(mapping, changed)
        if isinstance(alone, Unmapped) and partial:
            why = "no image of record" if book.available else "record images unavailable for"
            hint = (
                f"{why} {record_id} to rebuild it from: load the CRM's current records with "
                f"`sagebridge crm seed {mapping.name} FILE`, then replay this event"
            )
            errors = tuple(
                replace(e, detail=f"{e.detail}; {hint}") if e.field in partial else e
                for e in alone.errors
            )
            return Unmapped(alone.stage, "; ".join(e.describe() for e in errors[:10]), errors)
        return alone
    if image is None or newer(order, image):
        merged = (
            Image(project(rules, payload), order)
            if whole or image is None
            else merge(image, payload, changed, _diffs(mapping, payload), order, rules)
        )
        if (size := image_bytes(merged)) > max_bytes:
            book.put(key, None)  # the image missed this change, so it can no longer be used
            return Unmapped(
                Stage.VALIDATION,
                f"record {record_id}: its image would be {size} bytes, more than "
                f"SAGEBRIDGE_IMAGE_MAX_BYTES ({max_bytes}); not sent, and its image dropped",
            )
        book.put(key, merged)
        image = merged
    rebuilt = None if whole else _rebuilt(mapping, changed, image.unknown)
    return mapping.apply(_from_image(rules, payload, record_id, image, rebuilt))


def project(rules: ImageRules, payload: MappingOf[str, Any]) -> dict[str, Any]:
    """The fields of ``payload`` an image keeps (those the mapping reads), nulls left out."""
    return {name: value for name in rules.fields if (value := payload.get(name)) is not None}


def merge(
    image: Image,
    payload: MappingOf[str, Any],
    changed: frozenset[str],
    diffs: frozenset[str],
    order: tuple[Any, ...] | None,
    rules: ImageRules,
) -> Image:
    """``image`` with an UPDATE's changed fields set, nulled fields cleared (``changed``
    holds both: a nulled field is absent from the payload) and diffed ones unknown."""
    fields = {k: dict(v) if isinstance(v, dict) else v for k, v in image.fields.items()}
    unknown = set(image.unknown)
    for name in sorted(changed):
        if name.split(".")[0] not in rules.fields:
            continue  # a field the mapping does not read (LastModifiedDate)
        if name in diffs:
            _remove(fields, name)
            unknown.add(name)
            continue
        _set(fields, name, _get(payload, name))
        unknown -= {u for u in unknown if _touches(u, frozenset((name,)))}
    return Image(fields, order, frozenset(unknown))


def _from_image(
    rules: ImageRules,
    payload: MappingOf[str, Any],
    record_id: str,
    image: Image,
    changed: frozenset[str] | None,
) -> dict[str, Any]:
    """The payload to map for one record: the event's own fields (its header) with the
    image's in place of the record's, the record id alone, and (UPDATE) ``changed`` as its
    changed fields."""
    built = {k: v for k, v in payload.items() if k not in rules.fields}
    built.update(image.fields)
    built = _with(built, rules.record_ids, [record_id])
    if changed is not None:
        built = _with(built, rules.changed_fields, sorted(changed))
    return built


def _rebuilt(mapping: Mapping, changed: frozenset[str], unknown: frozenset[str]) -> frozenset[str]:
    """``changed`` with every field of each element one of whose fields changed: the image
    holds the others, so the element is rebuilt whole. Not when one of them is unknown (the
    mapping then refuses the element, as it refuses a half-changed one without an image)."""
    extra: set[str] = set()
    for name, source in mapping.elements.items():
        paths = source.paths()
        if name in mapping.contract.keys or not any(_touches(p, changed) for p in paths):
            continue
        if not any(_touches(p, unknown) for p in paths):
            extra.update(paths)
    return changed | extra


def _half_changed(mapping: Mapping, changed: frozenset[str]) -> frozenset[str]:
    """The elements an UPDATE changes only some fields of (they need an image)."""
    found: set[str] = set()
    for name, source in mapping.elements.items():
        paths = source.paths()
        touched = [p for p in paths if _touches(p, changed)]
        if name not in mapping.contract.keys and touched and len(touched) < len(paths):
            found.add(name)
    return frozenset(found)


def _touches(path: str, names: Iterable[str]) -> bool:
    return any(path == n or path.startswith(n + ".") or n.startswith(path + ".") for n in names)


def _record_ids(mapping: Mapping, payload: MappingOf[str, Any]) -> list[str] | None:
    changes = mapping.changes
    ids = changes.record_ids.value(Context(payload, None)) if changes is not None else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        return None
    if any("*" in i for i in ids):
        return None  # a wildcard: the mapping refuses it
    return list(dict.fromkeys(ids))


def _changed(mapping: Mapping, payload: MappingOf[str, Any]) -> frozenset[str]:
    """The changed fields, a flattened name (``LastName``) read as its compound path."""
    changes = mapping.changes
    found = changes.changed_fields.value(Context(payload, None)) if changes else None
    return (
        frozenset(mapping.aliases.get(n, n) for n in found if isinstance(n, str))
        if isinstance(found, list)
        else (frozenset())
    )


def _diffs(mapping: Mapping, payload: MappingOf[str, Any]) -> frozenset[str]:
    changes = mapping.changes
    if changes is None or changes.diff_fields is None:
        return frozenset()
    found = changes.diff_fields.value(Context(payload, None))
    return (
        frozenset(n for n in found if isinstance(n, str))
        if isinstance(found, list)
        else (frozenset())
    )


def _get(payload: MappingOf[str, Any], dotted: str) -> Any:
    found: Any = payload
    for part in dotted.split("."):
        if not isinstance(found, dict):
            return None
        found = found.get(part)
    return found


def _set(fields: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted field; a compound field set whole is merged component by component (a
    CDC event carries only its changed components), and ``None`` clears."""
    *parents, last = dotted.split(".")
    target = fields
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    if value is None:
        target.pop(last, None)
    elif isinstance(value, dict) and isinstance(target.get(last), dict):
        target[last] = {**target[last], **value}
        target[last] = {k: v for k, v in target[last].items() if v is not None}
    else:
        target[last] = value


def _remove(fields: dict[str, Any], dotted: str) -> None:
    _set(fields, dotted, None)


def _with(payload: MappingOf[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with ``dotted`` set (the dicts along the path copied)."""
    top = dict(payload)
    target = top
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.get(part)
        target[part] = dict(child) if isinstance(child, dict) else {}
        target = target[part]
    target[last] = value
    return top
