"""Where a mapped element's value comes from: the small vocabulary of ``contracts/mappings/``.

Each source either yields a value or says, in words an operator can act on, why it has none
(:class:`Missing`): "AccountId '001...' is not in look-up table salesforce_accounts". Paths
into the payload are JMESPath expressions (``Name.FirstName``), not a home-made language.

Forms, as written in a mapping file (a bare string is a path)::

    Name.LastName                                   # a path into the payload
    {const: "01"}                                   # a constant
    {record_id: true}                               # the id of the record being mapped
    {join: [Name.FirstName, Name.LastName], sep: " "}
    {lookup: salesforce_accounts, key: AccountId, column: CustomerNo}
    {first_of: [<source>, <source>]}                # the first that has a value; a CRM
                                                    # id its look-up table lacks stops it

and on any of them ``trim: true`` (strip, and fold runs of whitespace into one space),
``case: upper|lower|title`` and ``truncate: N`` — a cut to N characters that the mapping
declares. Nothing is ever cut without it: a value that is too long meets the contract's check.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jmespath
import jmespath.exceptions
import jmespath.parser

from service.errors import ContractFileError
from service.intake.xref import CrossReference


@dataclass(frozen=True, slots=True)
class Missing:
    """No value, and why (names the CRM field or the look-up)."""

    reason: str
    lookup_failed: bool = False
    """A CRM id was given but the cross-reference table does not know it: always an error,
    unlike an absent field, which may simply mean "no value"."""


@dataclass(frozen=True, slots=True)
class Context:
    payload: Mapping[str, Any]
    record_id: str | None


class Source(Protocol):
    def value(self, ctx: Context) -> Any | Missing: ...

    def paths(self) -> tuple[str, ...]:
        """The payload paths this source reads (to tell which elements an UPDATE changes)."""
        ...

    def longest(self) -> int | None:
        """The most characters it can yield, when that is known from the file alone."""
        ...


@dataclass(frozen=True, slots=True)
class Path:
    text: str
    compiled: jmespath.parser.ParsedResult

    def value(self, ctx: Context) -> Any | Missing:
        found = self.compiled.search(ctx.payload)
        return Missing(f"{self.text} is absent") if found is None else found

    def paths(self) -> tuple[str, ...]:
        return (self.text,)

    def longest(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Const:
    constant: Any

    def value(self, ctx: Context) -> Any | Missing:
        return self.constant

    def paths(self) -> tuple[str, ...]:
        return ()

    def longest(self) -> int | None:
        return _chars(self.constant) if isinstance(self.constant, str) else None


@dataclass(frozen=True, slots=True)
class RecordId:
    def value(self, ctx: Context) -> Any | Missing:
        return ctx.record_id if ctx.record_id is not None else Missing("no record id")

    def paths(self) -> tuple[str, ...]:
        return ()

    def longest(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Join:
    parts: tuple[Source, ...]
    sep: str

    def value(self, ctx: Context) -> Any | Missing:
        values = [part.value(ctx) for part in self.parts]
        texts = [str(v) for v in values if not isinstance(v, Missing) and str(v).strip()]
        if not texts:
            reasons = [v.reason for v in values if isinstance(v, Missing)]
            return Missing(" and ".join(reasons) or f"{' + '.join(self.paths())} are blank")
        return self.sep.join(texts)

    def paths(self) -> tuple[str, ...]:
        return tuple(p for part in self.parts for p in part.paths())

    def longest(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Lookup:
    table: CrossReference
    key: Source
    column: str

    def value(self, ctx: Context) -> Any | Missing:
        crm_id = self.key.value(ctx)
        if isinstance(crm_id, Missing):
            return Missing(f"{crm_id.reason}, so look-up table {self.table.name} cannot be used")
        found = self.table.get(str(crm_id), self.column)
        if found is None:
            what = f"{self.key.paths()[0] if self.key.paths() else 'record id'} {str(crm_id)!r}"
            if str(crm_id) in self.table.rows:
                reason = f"{what} has no {self.column} in look-up table {self.table.name}"
            else:
                reason = f"{what} is not in look-up table {self.table.name}"
            return Missing(reason, lookup_failed=True)
        return found

    def paths(self) -> tuple[str, ...]:
        return self.key.paths()

    def longest(self) -> int | None:
        values = [row.get(self.column, "") for row in self.table.rows.values()]
        return max((_chars(v) for v in values), default=0)


@dataclass(frozen=True, slots=True)
class FirstOf:
    options: tuple[Source, ...]

    def value(self, ctx: Context) -> Any | Missing:
        reasons: list[Missing] = []
        for option in self.options:
            found = option.value(ctx)
            if not isinstance(found, Missing):
                return found
            if found.lookup_failed:
                return found  # an id the table does not know is an error to fix, not to skip
            reasons.append(found)
        return Missing("; ".join(r.reason for r in reasons), any(r.lookup_failed for r in reasons))

    def paths(self) -> tuple[str, ...]:
        return tuple(p for option in self.options for p in option.paths())

    def longest(self) -> int | None:
        lengths = [option.longest() for option in self.options]
        return None if None in lengths else max(n for n in lengths if n is not None)


_SPACE = re.compile(r"\s+")
CASES = {"upper": str.upper, "lower": str.lower, "title": str.title}


@dataclass(frozen=True, slots=True)
class Shaped:
    """A source with whitespace, case and declared-truncation rules applied to its text."""

    inner: Source
    trim: bool
    case: str | None
    truncate: int | None

    def value(self, ctx: Context) -> Any | Missing:
        found = self.inner.value(ctx)
        if not isinstance(found, str):
            return found
        if self.trim:
            found = _SPACE.sub(" ", found).strip()
        if self.case is not None:
            found = CASES[self.case](found)
        if self.truncate is not None:
            found = unicodedata.normalize("NFC", found)[: self.truncate]
        return found

    def paths(self) -> tuple[str, ...]:
        return self.inner.paths()

    def longest(self) -> int | None:
        inner = self.inner.longest()
        if self.truncate is not None:
            return self.truncate if inner is None else min(inner, self.truncate)
        return inner


def compile_source(spec: Any, tables: Mapping[str, CrossReference], where: str) -> Source:
    """A source from its YAML form; :class:`ContractFileError` naming ``where`` if malformed."""
    if isinstance(spec, str):
        return _path(spec, where)
    if not isinstance(spec, dict):
        raise ContractFileError(f"{where}: expected a path or a mapping, got {spec!r}")
    spec = dict(spec)
    trim, case, truncate = (
        spec.pop("trim", False),
        spec.pop("case", None),
        spec.pop("truncate", None),
    )
    inner = _plain(spec, tables, where)
    if case is not None and case not in CASES:
        raise ContractFileError(f"{where}: case must be one of {sorted(CASES)}, got {case!r}")
    if truncate is not None and (type(truncate) is not int or truncate < 1):
        raise ContractFileError(f"{where}: truncate must be a positive number of characters")
    if not trim and case is None and truncate is None:
        return inner
    return Shaped(inner, bool(trim), case, truncate)


def _plain(spec: dict[str, Any], tables: Mapping[str, CrossReference], where: str) -> Source:
    kinds = {"path", "const", "record_id", "join", "lookup", "first_of"} & set(spec)
    if len(kinds) != 1:
        raise ContractFileError(
            f"{where}: give exactly one of path, const, record_id, join, lookup, first_of"
        )
    [kind] = kinds
    allowed = {"join": {"join", "sep"}, "lookup": {"lookup", "key", "column"}}.get(kind, {kind})
    if extra := set(spec) - allowed:
        raise ContractFileError(f"{where}: unknown {sorted(extra)} for {kind}")
    if kind == "path":
        return _path(spec["path"], where)
    if kind == "const":
        return Const(spec["const"])
    if kind == "record_id":
        return RecordId()
    if kind == "join":
        parts = spec["join"]
        if not isinstance(parts, list) or len(parts) < 2:
            raise ContractFileError(f"{where}: join needs a list of at least two sources")
        sep = spec.get("sep", " ")
        return Join(tuple(compile_source(p, tables, where) for p in parts), str(sep))
    if kind == "first_of":
        options = spec["first_of"]
        if not isinstance(options, list) or not options:
            raise ContractFileError(f"{where}: first_of needs a list of sources")
        return FirstOf(tuple(compile_source(o, tables, where) for o in options))
    table = tables.get(str(spec["lookup"]))
    if table is None:
        raise ContractFileError(
            f"{where}: no cross-reference table xref/{spec['lookup']}.csv"
            f" (known: {', '.join(sorted(tables)) or 'none'})"
        )
    column = str(spec.get("column"))
    if column not in table.columns:
        raise ContractFileError(
            f"{where}: xref/{table.name}.csv has no column {column!r} (has {list(table.columns)})"
        )
    if "key" not in spec:
        raise ContractFileError(f"{where}: a lookup needs a key (the source of the CRM id)")
    return Lookup(table, compile_source(spec["key"], tables, where), column)


def _path(text: Any, where: str) -> Path:
    if not isinstance(text, str) or not text:
        raise ContractFileError(f"{where}: a path must be a non-empty string")
    try:
        return Path(text, jmespath.compile(text))
    except jmespath.exceptions.JMESPathError as exc:
        raise ContractFileError(f"{where}: bad path {text!r}: {exc}".splitlines()[0]) from None


def _chars(text: str) -> int:
    return len(unicodedata.normalize("NFC", text))
