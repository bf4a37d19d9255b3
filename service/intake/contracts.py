"""Table contracts: the Sage element list of each table, loaded from data, turned into checks.

A contract says, for every element of a Sage table, its type and length exactly as the Cloud
Connector documents them (``String 30``, ``Numeric 14.2``). Checking a record reports *every*
bad field at once as :class:`FieldError` values, because an integration engineer fixing a feed
wants the whole list, not one error per round trip.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any

import yaml

from service.errors import ContractFileError
from service.field_errors import ErrorCode, FieldError
from service.intake.limits import MAX_DEPTH, MAX_FIELD_NAME_CHARS, MAX_PATH_CHARS, MAX_VALUES


@dataclass(frozen=True, slots=True)
class Element:
    """One Sage element: ``String n`` (n characters) or ``Numeric p.s`` (p digits, s decimals)."""

    name: str
    description: str
    type: str
    length: str
    max_chars: int | None = None
    precision: int | None = None
    scale: int | None = None

    @classmethod
    def from_data(cls, raw: Mapping[str, Any], table: str) -> Element:
        try:
            name, description = str(raw["name"]), str(raw.get("description", ""))
            kind, length = str(raw["type"]), str(raw["length"])
        except KeyError as missing:
            raise ContractFileError(f"{table}: element needs {missing}: {dict(raw)}") from None
        if kind == "String" and re.fullmatch(r"[0-9]+", length):
            return cls(name, description, kind, length, max_chars=int(length))
        if kind == "Numeric" and re.fullmatch(r"[0-9]+(\.[0-9]+)?", length):
            precision, _, scale = length.partition(".")
            return cls(
                name, description, kind, length, precision=int(precision), scale=int(scale or 0)
            )
        raise ContractFileError(f"{table}: element {name}: unsupported type {kind} {length}")

    def check(self, value: Any) -> FieldError | None:
        """Check one present value; ``None`` means it fits."""
        if self.max_chars is not None:
            return _check_string(self.name, value, self.max_chars)
        assert self.precision is not None and self.scale is not None
        return _check_numeric(self.name, value, self.precision, self.scale)


_PLAIN_DECIMAL = re.compile(r"[+-]?([0-9]+)(?:\.([0-9]+))?")


# C0 controls except tab/LF/CR, DEL and C1 controls: they corrupt exports and terminals in Sage.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_ERRORS = 50


def _check_string(name: str, value: Any, max_chars: int) -> FieldError | None:
    if not isinstance(value, str):
        return FieldError(name, ErrorCode.WRONG_TYPE)
    control = _CONTROL.search(value)
    if control is not None:
        return FieldError(name, ErrorCode.CONTROL_CHARACTER, actual=control.start())
    # Characters, not bytes or code points: "é" typed as e + combining accent is one character.
    length = len(value) if value.isascii() else len(unicodedata.normalize("NFC", value))
    if length > max_chars:
        return FieldError(name, ErrorCode.TOO_LONG, max_chars, length)
    return None


def _check_numeric(name: str, value: Any, precision: int, scale: int) -> FieldError | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return FieldError(name, ErrorCode.WRONG_TYPE)
    if isinstance(value, float):
        if not math.isfinite(value):
            return FieldError(name, ErrorCode.NOT_NUMERIC)
        # repr is the shortest exact form; Decimal expands its exponent without rounding.
        text = format(Decimal(repr(value)), "f")
    else:
        text = str(value)
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        # Exponents, NaN, Infinity, blanks, thousands separators: Sage would reject or misread them.
        return FieldError(name, ErrorCode.NOT_NUMERIC)
    whole, fraction = match.group(1).lstrip("0"), (match.group(2) or "").rstrip("0")
    if len(fraction) > scale:
        return FieldError(name, ErrorCode.TOO_MANY_DECIMALS, scale, len(fraction))
    if len(whole) > precision - scale:
        return FieldError(name, ErrorCode.TOO_MANY_DIGITS, precision - scale, len(whole))
    return None


@dataclass(frozen=True, slots=True)
class Contract:
    """A Sage table's elements; ``keys`` are the elements that identify a record (required)."""

    name: str
    table: str
    keys: tuple[str, ...]
    elements: Mapping[str, Element] = field(repr=False)
    _string_limits: Mapping[str, int] = field(init=False, repr=False, compare=False)
    """Most fields are short printable ASCII strings; with these limits :meth:`check` passes
    them without a call or a regex (about half its cost per record)."""

    _key_values: Callable[[Mapping[str, Any]], Any] = field(init=False, repr=False, compare=False)
    """The key elements' values read in one C call (:meth:`identity`)."""

    def __post_init__(self) -> None:
        limits = {n: e.max_chars for n, e in self.elements.items() if e.max_chars is not None}
        object.__setattr__(self, "_string_limits", limits)
        # Two names or more give a tuple; one name its bare value, so it gets a second name
        # whose value is dropped (the identity is always a tuple of the key values).
        keys = self.keys if len(self.keys) != 1 else (*self.keys, *self.keys)
        object.__setattr__(self, "_key_values", itemgetter(*keys) if keys else _no_keys)

    def check(self, record: Mapping[str, Any]) -> list[FieldError]:
        """Every problem with ``record``: missing keys first, then the record's fields in their
        order; empty if valid.

        ``null`` is accepted for non-key elements (the CRM's "no value"); a key element must be
        present and non-empty.
        """
        errors: list[FieldError] = []
        for key in self.keys:
            if record.get(key) in (None, ""):
                errors.append(FieldError(key, ErrorCode.MISSING))
        limits = self._string_limits
        for name, value in record.items():
            if len(errors) >= MAX_ERRORS:
                break  # enough to act on; a hostile record must not make a huge reply
            if (
                type(value) is str
                and value.isascii()
                and value.isprintable()  # no control characters (tab, CR, LF go the long way)
                and len(value) <= limits.get(name, -1)
            ):
                continue
            element = self.elements.get(name)
            if element is None:
                errors.append(FieldError(_shorten(name), ErrorCode.UNKNOWN_FIELD))
            elif value is not None:
                problem = element.check(value)
                if problem is not None:
                    errors.append(problem)
        return errors

    def identity(self, record: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The record's key values: two events with the same identity touch the same Sage row."""
        if not self.keys:
            return None
        try:
            values: tuple[Any, ...] = self._key_values(record)
        except KeyError:  # a key missing (the record is refused for it): ``None`` in its place
            return tuple([record.get(key) for key in self.keys])
        return values if len(self.keys) != 1 else values[:1]

    @classmethod
    def from_data(cls, name: str, raw: Mapping[str, Any]) -> Contract:
        table = str(raw.get("table", name))
        elements: dict[str, Element] = {}
        for item in raw.get("elements") or ():
            element = Element.from_data(item, table)
            if element.name in elements:
                raise ContractFileError(f"{table}: element {element.name} listed twice")
            elements[element.name] = element
        keys = tuple(str(k) for k in raw.get("keys") or ())
        if unknown := [k for k in keys if k not in elements]:
            raise ContractFileError(f"{table}: keys {unknown} are not elements")
        return cls(name=name, table=table, keys=keys, elements=elements)


def _no_keys(record: Mapping[str, Any]) -> None:
    return None


def load_contracts(directory: Path) -> dict[str, Contract]:
    """Every ``*.yaml`` in ``directory`` as a contract named after its file stem."""
    contracts: dict[str, Contract] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ContractFileError(f"{path}: expected a mapping with table, keys, elements")
        contracts[path.stem] = Contract.from_data(path.stem, raw)
    return contracts


_Path = tuple["_Path", str | int] | None
"""Where a value sits: ``(parent, key or index)``, one link per open level; made text only for
an error."""


def check_free_form(record: Mapping[str, Any]) -> list[FieldError]:
    """For routes without a contract: any JSON object, but no control characters in any string,
    at most :data:`~service.intake.limits.MAX_DEPTH` levels and
    :data:`~service.intake.limits.MAX_VALUES` values. Errors name the field by its path
    (``Lines[3].Memo``).

    The walk keeps one iterator per open level, and a field's path becomes text only for an
    error, so checking a record costs memory in proportion to its depth, not its size."""
    errors: list[FieldError] = []
    values = 1
    levels: list[tuple[Iterator[tuple[str | int, Any]], _Path]] = [(iter(record.items()), None)]
    while levels:
        children, parent = levels[-1]
        for key, value in children:
            values += 1
            if values > MAX_VALUES:
                errors.append(
                    FieldError(_path_text((parent, key)), ErrorCode.TOO_MANY_VALUES, MAX_VALUES)
                )
                return errors
            if isinstance(value, str):
                if value.isprintable():  # no control character can be in it
                    continue
                control = _CONTROL.search(value)
                if control is not None:
                    where = _path_text((parent, key))
                    errors.append(
                        FieldError(where, ErrorCode.CONTROL_CHARACTER, actual=control.start())
                    )
                    if len(errors) >= MAX_ERRORS:
                        return errors
            elif isinstance(value, (dict, list)):
                if len(levels) >= MAX_DEPTH:
                    errors.append(
                        FieldError(_path_text((parent, key)), ErrorCode.TOO_DEEP, MAX_DEPTH)
                    )
                    return errors
                inner = iter(value.items()) if isinstance(value, dict) else enumerate(value)
                levels.append((inner, (parent, key)))
                break  # into the child; this level's iterator resumes after it
        else:
            levels.pop()
    return errors


def _path_text(path: _Path) -> str:
    """``a.b[2].c``, each name shortened, the whole kept to its start and end if long."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else "." + _shorten(key))
    text = "".join(reversed(parts)).removeprefix(".")
    if len(text) <= MAX_PATH_CHARS:
        return text
    half = MAX_PATH_CHARS // 2
    return text[:half] + "…" + text[-half:]


def describe_errors(errors: Sequence[FieldError], most: int = 10) -> str:
    """The field problems in one line, for the ``message`` of an ERROR reply (the full list is
    in ``errors``)."""
    text = "; ".join(error.describe() for error in errors[:most])
    if len(errors) > most:
        text += f"; and {len(errors) - most} more"
    return text


def _shorten(name: str) -> str:
    return name if len(name) <= MAX_FIELD_NAME_CHARS else name[:MAX_FIELD_NAME_CHARS] + "…"
