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

A file that cannot work refuses start-up with one line (:class:`ContractFileError`): an element
its contract does not have, a key it never fills, a declared truncation or a constant longer
than its element, a look-up of a table or column that does not exist.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.answers.outcomes import Stage
from service.errors import ContractFileError
from service.field_errors import ErrorCode, FieldError
from service.intake.contracts import Contract
from service.intake.limits import MAX_ID_CHARS
from service.intake.mapping_sources import Context, Missing, Source, compile_source
from service.intake.xref import CrossReference


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


@dataclass(frozen=True, slots=True)
class Mapping:
    name: str
    contract: Contract
    elements: MappingOf[str, Source]
    event_id: tuple[Source, ...] = ()
    """Payload fields whose values, joined by ``-``, make the ``event_id`` of a raw payload
    (a record on a topic bound to this route carries no envelope)."""
    changes: Changes | None = None

    def event_id_of(self, payload: MappingOf[str, Any]) -> str | None:
        """The ``event_id`` of a raw payload, or ``None`` if its fields are absent."""
        ctx = Context(payload, None)
        parts = [source.value(ctx) for source in self.event_id]
        if not parts or any(isinstance(p, Missing) or p in ("", None) for p in parts):
            return None
        text = "-".join(str(p) for p in parts)
        return text if len(text) <= MAX_ID_CHARS and text.isprintable() else None

    def apply(self, payload: MappingOf[str, Any]) -> Mapped | Unmapped:
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
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            return Unmapped(Stage.VALIDATION, f"{self.name}: record ids: a non-empty list needed")
        if wild := [i for i in ids if "*" in i]:
            return Unmapped(
                Stage.ROUTE,
                f"record id {wild[0]!r} is a wildcard (a change to many records at once); "
                "resend the records one by one",
            )
        changed: frozenset[str] | None = None
        diffs: frozenset[str] = frozenset()
        if change in changes.changed_only:
            changed = _names(changes.changed_fields, ctx)
            diffs = _names(changes.diff_fields, ctx)
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
            text = "; ".join(e.describe() for e in unique[:10])
            return Unmapped(Stage.VALIDATION, text, tuple(unique))
        return Mapped(records)

    def _record(
        self, ctx: Context, changed: frozenset[str] | None, diffs: frozenset[str]
    ) -> tuple[dict[str, Any], list[FieldError]]:
        record: dict[str, Any] = {}
        errors: list[FieldError] = []
        keys = self.contract.keys
        for name, source in self.elements.items():
            if changed is not None and name not in keys:
                paths = source.paths()
                touched = [p for p in paths if _touched(p, changed)]
                if not touched:
                    continue  # not changed: Sage keeps its value
                if len(touched) < len(paths):
                    untouched = [p for p in paths if p not in touched]
                    errors.append(_unmapped(name, _partial(touched, untouched)))
                    continue
                if diffed := [p for p in touched if _touched(p, diffs)]:
                    detail = (
                        f"{', '.join(diffed)} came as a diff of the old value, not the value; "
                        "re-read the record from the CRM and send it whole"
                    )
                    errors.append(_unmapped(name, detail))
                    continue
            found = source.value(ctx)
            if isinstance(found, Missing):
                if name in keys or found.lookup_failed:
                    errors.append(_unmapped(name, found.reason))
                    continue
                found = None
            record[name] = found
        return record, errors


def _names(source: Source | None, ctx: Context) -> frozenset[str]:
    found = source.value(ctx) if source is not None else None
    return (
        frozenset(n for n in found if isinstance(n, str))
        if isinstance(found, list)
        else frozenset()
    )


def _touched(path: str, changed: frozenset[str]) -> bool:
    """Whether an UPDATE's changed fields (``Phone``, ``Name.LastName``) include ``path``."""
    return any(path == c or path.startswith(c + ".") or c.startswith(path + ".") for c in changed)


def _partial(touched: list[str], untouched: list[str]) -> str:
    return (
        f"built from {', '.join(touched + untouched)}, but this update changes only "
        f"{', '.join(touched)}; it cannot be rebuilt without {', '.join(untouched)}"
    )


def _unmapped(element: str, detail: str) -> FieldError:
    return FieldError(element, ErrorCode.UNMAPPED, detail=detail)


def _why(value: Any) -> str:
    return value.reason if isinstance(value, Missing) else f"not a string: {value!r}"


def load_mappings(
    directory: Path, contracts: MappingOf[str, Contract], tables: MappingOf[str, CrossReference]
) -> dict[str, Mapping]:
    """Every ``*.yaml`` in ``directory`` (none if it does not exist), checked against its
    contract; :class:`ContractFileError` names the file and the element at fault."""
    mappings: dict[str, Mapping] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ContractFileError(f"cannot read mapping {path}: {exc}".splitlines()[0]) from None
        mappings[path.stem] = _mapping(path, raw, contracts, tables)
    return mappings


def _mapping(
    path: Path,
    raw: Any,
    contracts: MappingOf[str, Contract],
    tables: MappingOf[str, CrossReference],
) -> Mapping:
    where = f"mappings/{path.name}"
    if not isinstance(raw, dict) or not isinstance(raw.get("elements"), dict):
        raise ContractFileError(f"{where}: expected 'contract:' and an 'elements:' mapping")
    contract = contracts.get(str(raw.get("contract")))
    if contract is None:
        raise ContractFileError(f"{where}: no contract tables/{raw.get('contract')}.yaml")
    elements: dict[str, Source] = {}
    for name, spec in raw["elements"].items():
        element = contract.elements.get(str(name))
        if element is None:
            raise ContractFileError(f"{where}: {name} is not an element of {contract.table}")
        source = compile_source(spec, tables, f"{where}: {name}")
        longest = source.longest()
        if element.max_chars is not None and longest is not None and longest > element.max_chars:
            raise ContractFileError(
                f"{where}: {name} can be {longest} characters, but {contract.table} allows "
                f"{element.max_chars}: it could never fit"
            )
        elements[str(name)] = source
    if unfilled := [k for k in contract.keys if k not in elements]:
        raise ContractFileError(f"{where}: key elements {unfilled} are never filled")
    event_id = raw.get("event_id") or []
    if not isinstance(event_id, list):
        raise ContractFileError(f"{where}: event_id is a list of sources")
    ids = tuple(compile_source(s, tables, f"{where}: event_id") for s in event_id)
    changes = _changes(raw.get("changes"), tables, where)
    return Mapping(path.stem, contract, elements, ids, changes)


def _changes(raw: Any, tables: MappingOf[str, CrossReference], where: str) -> Changes | None:
    if raw is None:
        return None
    where = f"{where}: changes"
    need = {"type", "record_ids", "changed_fields", "whole", "changed_only"}
    if not isinstance(raw, dict) or (missing := need - set(raw)):
        raise ContractFileError(f"{where}: needs {sorted(missing or need)}")
    refuse = raw.get("refuse") or {}
    if not isinstance(refuse, dict):
        raise ContractFileError(f"{where}: refuse maps a change type to its message")
    return Changes(
        compile_source(raw["type"], tables, where),
        compile_source(raw["record_ids"], tables, where),
        compile_source(raw["changed_fields"], tables, where),
        frozenset(str(t) for t in raw["whole"]),
        frozenset(str(t) for t in raw["changed_only"]),
        {str(k): str(v) for k, v in refuse.items()},
        compile_source(raw["diff_fields"], tables, where) if "diff_fields" in raw else None,
    )
