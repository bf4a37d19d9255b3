"""Mappings: how a Sage record is built from a CRM's own payload — read from data, never code.

A route may name a mapping in ``contracts/mappings/``; intake applies it to the event's ``data``
before the contract check, so the mapped record meets the same contract as any other. Pure: a
payload in, :class:`Mapped` records or an :class:`Unmapped` refusal out.

A mapping file names its contract and, per Sage element, the source of its value
(:mod:`service.intake.mapping_sources`). It may also describe a change feed (``changes:``),
such as Salesforce Change Data Capture:

- ``record_ids``: the payload's list of record ids; the event becomes one Sage record per id.
- ``whole``: change types that carry the whole record; every mapped element is sent (an absent
  CRM field as ``null``, Sage's "no value").
- ``changed_only``: change types that carry only the changed fields (``changed_fields``); the
  keys and the elements built from changed fields are sent, the others left out, so Sage keeps
  what it has. An element built from several fields of which only some changed (a name joined
  from first and last name) cannot be rebuilt from the event, so the event is refused rather
  than half a name sent.
- ``refuse``: change types (``fnmatch`` patterns such as ``GAP_*``) refused with the given
  message.
- ``diff_fields`` (optional): fields an update carries as a diff rather than the new value
  (Salesforce, for long text); an element built from one is refused, never sent as the diff.

The files are read and checked at start-up by :mod:`service.intake.mapping_files`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from service.answers.outcomes import Stage
from service.field_errors import ErrorCode, FieldError
from service.intake.contracts import Contract, describe_errors
from service.intake.image_rules import ImageRules
from service.intake.limits import MAX_ID_CHARS
from service.intake.mapping_sources import (
    Context,
    Missing,
    Source,
    kind_of,
    touched,
)


@dataclass(frozen=True, slots=True)
class Mapped:
    """The Sage records an event stands for: ``(record id or None, record)`` each."""

    records: list[tuple[str | None, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Unmapped:
    """Why the event cannot be mapped: a refusal at ``stage`` (``route`` for a change type the
    Connector cannot carry out, ``validation`` for data the mapping cannot fill)."""

    stage: Stage
    message: str
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True, slots=True)
class Changes:
    """How a change feed's payload says what happened (paths into the payload)."""

    type: Source
    record_ids: Source
    changed_fields: Source
    whole: frozenset[str]
    changed_only: frozenset[str]
    refuse: MappingOf[str, str]
    diff_fields: Source | None = None
    """Fields an update carries as a diff of the old value, not the value (Salesforce does
    this for long text): an element built from one is refused, never sent as the diff."""


DEFAULT_MAX_RECORD_IDS = 1_000
"""Most CRM records one event may stand for (``SAGEBRIDGE_MAX_RECORD_IDS``). Salesforce merges
one change to many records in one event; each becomes a Sage record, a ledger entry and a line
of a possible ERROR, so an event naming more is refused whole, before any of that is made."""


@dataclass(frozen=True, slots=True)
class Compound:
    """A compound field (Salesforce's ``Name``, ``MailingAddress``) and the top-level names of
    its components when a producer flattens it (the Confluent Salesforce CDC source connector
    writes ``FirstName``, ``MailingCity`` beside a null ``Name``): component -> flat name."""

    field: str
    components: MappingOf[str, str]


@dataclass(frozen=True, slots=True)
class Mapping:
    name: str
    contract: Contract
    elements: MappingOf[str, Source]
    event_id: tuple[Source, ...] = ()
    """Payload fields whose values, joined by ``-``, make the ``event_id`` of a raw payload
    (a record on a topic bound to this route carries no envelope)."""
    changes: Changes | None = None
    compounds: tuple[Compound, ...] = ()
    aliases: MappingOf[str, str] = dataclass_field(default_factory=dict)
    """Flat name -> compound path (``LastName`` -> ``Name.LastName``), for header field lists."""

    image: ImageRules | None = None
    """Keep each record's last image and build from it (:mod:`service.intake.images`)."""

    def crm_record(self, payload: MappingOf[str, Any]) -> MappingOf[str, Any] | Unmapped:
        """The CRM payload in one shape, whichever its producer wrote: compound fields nested
        (Salesforce's own event) whether they came nested or flattened. This is the record the
        Sage record is built from (:meth:`sage_records`); a record image can be merged into
        it in between."""
        if not self.compounds:
            return payload
        record: dict[str, Any] | None = None
        for compound in self.compounds:
            nested = payload.get(compound.field)
            flat = {
                component: payload[name]
                for component, name in compound.components.items()
                if payload.get(name) is not None
            }
            # The Confluent connector declares Name a string beside the flattened components;
            # any other non-object here is a payload of another shape.
            if (
                nested is not None
                and type(nested) is not dict
                and not (flat and type(nested) is str)
            ):
                return _wrong_shape(
                    f"{compound.field}: expected an object, found {kind_of(nested)}"
                )
            if not flat:
                continue
            if record is None:
                record = dict(payload)
            given = nested if type(nested) is dict else {}
            record[compound.field] = {**flat, **{k: v for k, v in given.items() if v is not None}}
        return payload if record is None else record

    def event_id_of(self, payload: MappingOf[str, Any]) -> str | None:
        """The ``event_id`` of a raw payload, or ``None`` if its fields are absent."""
        ctx = Context(payload, None)
        parts = [source.value(ctx) for source in self.event_id]
        if not parts or any(isinstance(p, Missing) or p in ("", None) for p in parts):
            return None
        text = "-".join(str(p) for p in parts)
        return text if len(text) <= MAX_ID_CHARS and text.isprintable() else None

    def apply(
        self, payload: MappingOf[str, Any], max_record_ids: int = DEFAULT_MAX_RECORD_IDS
    ) -> Mapped | Unmapped:
        """CRM payload -> CRM record (:meth:`crm_record`) -> Sage records."""
        record = self.crm_record(payload)
        if isinstance(record, Unmapped):
            return record
        return self.sage_records(record, max_record_ids)

    def sage_records(
        self, payload: MappingOf[str, Any], max_record_ids: int = DEFAULT_MAX_RECORD_IDS
    ) -> Mapped | Unmapped:
        """The Sage records a CRM record (in :meth:`crm_record`'s shape) stands for."""
        if self.changes is None:
            return self._records(payload, [None], None)
        changes, ctx = self.changes, Context(payload, None)
        change = changes.type.value(ctx)
        if isinstance(change, Missing) or not isinstance(change, str):
            return Unmapped(Stage.VALIDATION, f"{self.name}: change type: {_why(change)}")
        for pattern, message in changes.refuse.items():
            if fnmatch.fnmatchcase(change, pattern):
                return Unmapped(Stage.ROUTE, f"change type {change}: {message}")
        if change not in changes.whole and change not in changes.changed_only:
            known = ", ".join(sorted(changes.whole | changes.changed_only))
            return Unmapped(Stage.ROUTE, f"change type {change}: not handled (handled: {known})")
        ids = changes.record_ids.value(ctx)
        if not isinstance(ids, list) or not ids:
            found = ids.reason if isinstance(ids, Missing) else f"found {kind_of(ids)}"
            return Unmapped(
                Stage.VALIDATION, f"{self.name}: record ids: a non-empty list needed, {found}"
            )
        if len(ids) > max_record_ids:
            return Unmapped(
                Stage.VALIDATION,
                f"{self.name}: record ids: {len(ids)}, more than the {max_record_ids} one event "
                "may stand for (SAGEBRIDGE_MAX_RECORD_IDS); send the records in smaller changes",
            )
        bad = [i for i in ids if not (isinstance(i, str) and i)]
        if bad:
            return Unmapped(
                Stage.VALIDATION,
                f"{self.name}: record ids: each must be non-empty text, found {kind_of(bad[0])}",
            )
        if wild := [i for i in ids if "*" in i]:
            return Unmapped(
                Stage.ROUTE,
                f"record id {wild[0]!r} is a wildcard (a change to many records at once); "
                "resend the records one by one",
            )
        changed: frozenset[str] | None = None
        diffs: frozenset[str] = frozenset()
        if change in changes.changed_only:
            changed = _names(changes.changed_fields, ctx, self.aliases)
            diffs = _names(changes.diff_fields, ctx, self.aliases)
        return self._records(payload, list(dict.fromkeys(ids)), changed, diffs)

    def _records(
        self,
        payload: MappingOf[str, Any],
        ids: list[str | None],
        changed: frozenset[str] | None,
        diffs: frozenset[str] = frozenset(),
    ) -> Mapped | Unmapped:
        records: list[tuple[str | None, dict[str, Any]]] = []
        errors: list[FieldError] = []
        for record_id in ids:
            record, problems = self._record(Context(payload, record_id), changed, diffs)
            records.append((record_id, record))
            errors.extend(problems)
        if errors:
            unique = list(dict.fromkeys(errors))
            return Unmapped(Stage.VALIDATION, describe_errors(unique), tuple(unique))
        return Mapped(records)

    def _is_text(self, name: str) -> bool:
        element = self.contract.elements.get(name)
        return element is not None and element.max_chars is not None

    def _record(
        self, ctx: Context, changed: frozenset[str] | None, diffs: frozenset[str]
    ) -> tuple[dict[str, Any], list[FieldError]]:
        record: dict[str, Any] = {}
        errors: list[FieldError] = []
        keys = self.contract.keys
        for name, source in self.elements.items():
            if changed is not None and name not in keys:
                lacking = source.needs(changed)
                if lacking is None:
                    continue  # not changed: Sage keeps its value
                if lacking:
                    errors.append(_unmapped(name, _partial(source, changed, lacking)))
                    continue
                if diffed := [p for p in source.paths() if touched(p, diffs)]:
                    detail = (
                        f"{', '.join(diffed)} came as a diff of the old value, not the value; "
                        "re-read the record from the CRM and send it whole"
                    )
                    errors.append(_unmapped(name, detail))
                    continue
            found = source.value(ctx)
            if isinstance(found, Missing):
                if name in keys or found.fatal:
                    code = ErrorCode.WRONG_TYPE if found.wrong_shape else ErrorCode.UNMAPPED
                    errors.append(FieldError(name, code, detail=found.reason))
                    continue
                found = None
            elif (wrong := _wrong_type(name, source, found, self._is_text(name))) is not None:
                errors.append(wrong)
                continue
            record[name] = found
        return record, errors


def _wrong_type(name: str, source: Source, value: Any, text: bool) -> FieldError | None:
    """A found value that cannot fill element ``name``: an object or array (the element holds
    one value), or a number or boolean where ``text`` belongs."""
    where = source.paths()[0] if source.paths() else name
    if type(value) in (dict, list):
        detail = f"{where}: expected a single value, found {kind_of(value)}"
    elif text and type(value) is not str:
        detail = f"{where}: expected text, found {kind_of(value)}"
    else:
        return None
    return FieldError(name, ErrorCode.WRONG_TYPE, detail=detail)


def _wrong_shape(detail: str) -> Unmapped:
    field = detail.partition(":")[0]
    error = FieldError(field, ErrorCode.WRONG_TYPE, detail=detail.partition(": ")[2])
    return Unmapped(Stage.VALIDATION, error.describe(), (error,))


def _names(source: Source | None, ctx: Context, aliases: MappingOf[str, str]) -> frozenset[str]:
    """Field names from the header (changed, diffed), a flattened name as its compound path."""
    found = source.value(ctx) if source is not None else None
    if not isinstance(found, list):
        return frozenset()
    return frozenset(aliases.get(n, n) for n in found if isinstance(n, str))


def _partial(source: Source, changed: frozenset[str], lacking: tuple[str, ...]) -> str:
    changes = [p for p in source.paths() if touched(p, changed)]
    return (
        f"built from {', '.join(changes + list(lacking))}, but this update changes only "
        f"{', '.join(changes)}; it cannot be rebuilt without {', '.join(lacking)}"
    )


def _unmapped(element: str, detail: str) -> FieldError:
    return FieldError(element, ErrorCode.UNMAPPED, detail=detail)


def _why(value: Any) -> str:
    return value.reason if isinstance(value, Missing) else f"not a string: {value!r}"
