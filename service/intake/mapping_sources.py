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
``case: upper|lower|title``, ``truncate: N`` — a cut to N characters that the mapping
declares — and ``number_as_text: true`` (a JSON number may fill a text element). Nothing is
ever cut without it: a value that is too long meets the contract's check.

A value of the wrong shape is an error naming the path and what was found (an object where a
single value belongs, an array where an object belongs, a number where text belongs unless
``number_as_text``), never stored as null or as Python's idea of it.
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
import orjson

from service.errors import ContractFileError
from service.intake.xref import CrossReference


@dataclass(frozen=True, slots=True)
class Missing:
    """No value, and why (names the CRM field or the look-up)."""

    reason: str
    fatal: bool = False
    """Always an error, unlike an absent field, which may simply mean "no value": a CRM id the
    cross-reference table does not know, or a value of the wrong shape (an object where text
    belongs, a list where an object belongs)."""
    wrong_shape: bool = False
    """The payload had a value of another shape here (reported as ``wrong_type``)."""


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

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        """For an update that changes only ``changed``: ``None`` if this source reads none of
        it, ``()`` if it can be rebuilt from the event, else the paths it lacks."""
        ...


@dataclass(frozen=True, slots=True)
class Path:
    """A path into the payload. A plain chain of names (``Name.FirstName``) is walked here, so
    that a step into something that is not an object is reported (``Name: expected an object,
    found an array``) instead of read as "absent"; other JMESPath expressions go to jmespath."""

    text: str
    compiled: jmespath.parser.ParsedResult
    steps: tuple[str, ...] | None = None

    def value(self, ctx: Context) -> Any | Missing:
        if self.steps is None:
            found = self.compiled.search(ctx.payload)
            return Missing(f"{self.text} is absent") if found is None else found
        current: Any = ctx.payload
        for index, step in enumerate(self.steps):
            if type(current) is not dict:
                where = ".".join(self.steps[:index])
                return wrong(f"{where}: expected an object, found {kind_of(current)}")
            current = current.get(step)
            if current is None:
                return Missing(f"{self.text} is absent")
        return current

    def paths(self) -> tuple[str, ...]:
        return (self.text,)

    def longest(self) -> int | None:
        return None

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        return () if touched(self.text, changed) else None


@dataclass(frozen=True, slots=True)
class Const:
    constant: Any

    def value(self, ctx: Context) -> Any | Missing:
        return self.constant

    def paths(self) -> tuple[str, ...]:
        return ()

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        return None

    def longest(self) -> int | None:
        return _chars(self.constant) if isinstance(self.constant, str) else None


@dataclass(frozen=True, slots=True)
class RecordId:
    def value(self, ctx: Context) -> Any | Missing:
        return ctx.record_id if ctx.record_id is not None else Missing("no record id")

    def paths(self) -> tuple[str, ...]:
        return ()

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        return None

    def longest(self) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Join:
    parts: tuple[Source, ...]
    sep: str

    def value(self, ctx: Context) -> Any | Missing:
        values = [part.value(ctx) for part in self.parts]
        for part, value in zip(self.parts, values, strict=True):
            if isinstance(value, Missing) and value.fatal:
                return value
            if not isinstance(value, Missing) and type(value) is not str:
                where = part.paths()[0] if part.paths() else "a joined part"
                return wrong(f"{where}: expected text, found {kind_of(value)}")
        texts = [v for v in values if isinstance(v, str) and v.strip()]
        if not texts:
            reasons = [v.reason for v in values if isinstance(v, Missing)]
            return Missing(" and ".join(reasons) or f"{' + '.join(self.paths())} are blank")
        return self.sep.join(texts)

    def paths(self) -> tuple[str, ...]:
        return tuple(p for part in self.parts for p in part.paths())

    def longest(self) -> int | None:
        return None

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        results = [part.needs(changed) for part in self.parts]
        if all(r is None for r in results):
            return None
        lacking = [
            p
            for part, r in zip(self.parts, results, strict=True)
            if r is None
            for p in part.paths()
        ]
        return tuple(lacking) + tuple(p for r in results if r for p in r)


@dataclass(frozen=True, slots=True)
class Lookup:
    table: CrossReference
    key: Source
    column: str

    def value(self, ctx: Context) -> Any | Missing:
        crm_id = self.key.value(ctx)
        if isinstance(crm_id, Missing):
            if crm_id.fatal:
                return crm_id
            return Missing(f"{crm_id.reason}, so look-up table {self.table.name} cannot be used")
        if type(crm_id) is not str:
            where = self.key.paths()[0] if self.key.paths() else "record id"
            return wrong(f"{where}: expected text (a CRM id), found {kind_of(crm_id)}")
        found = self.table.get(str(crm_id), self.column)
        if found is None:
            what = f"{self.key.paths()[0] if self.key.paths() else 'record id'} {str(crm_id)!r}"
            if str(crm_id) in self.table.rows:
                reason = f"{what} has no {self.column} in look-up table {self.table.name}"
            else:
                reason = f"{what} is not in look-up table {self.table.name}"
            return Missing(reason, fatal=True)
        return found

    def paths(self) -> tuple[str, ...]:
        return self.key.paths()

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        return self.key.needs(changed)

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
            if found.fatal:
                return found  # an id the table does not know is an error to fix, not to skip
            reasons.append(found)
        return Missing("; ".join(r.reason for r in reasons), any(r.fatal for r in reasons))

    def paths(self) -> tuple[str, ...]:
        return tuple(p for option in self.options for p in option.paths())

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        results = [option.needs(changed) for option in self.options]
        if () in results:
            return ()  # one alternative is rebuilt whole from the event
        return next((r for r in results if r is not None), None)

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
    number_as_text: bool = False
    """The mapping's say-so that a number may fill a text element (written as JSON writes it)."""

    def value(self, ctx: Context) -> Any | Missing:
        found = self.inner.value(ctx)
        if self.number_as_text and type(found) in (int, float):
            found = orjson.dumps(found).decode()
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

    def needs(self, changed: frozenset[str]) -> tuple[str, ...] | None:
        return self.inner.needs(changed)

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
    trim, case, truncate, number_as_text = (
        spec.pop("trim", False),
        spec.pop("case", None),
        spec.pop("truncate", None),
        spec.pop("number_as_text", False),
    )
    inner = _plain(spec, tables, where)
    if case is not None and case not in CASES:
        raise ContractFileError(f"{where}: case must be one of {sorted(CASES)}, got {case!r}")
    if truncate is not None and (type(truncate) is not int or truncate < 1):
        raise ContractFileError(f"{where}: truncate must be a positive number of characters")
    if not trim and case is None and truncate is None and not number_as_text:
        return inner
    return Shaped(inner, bool(trim), case, truncate, bool(number_as_text))


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
    steps = tuple(text.split(".")) if _PLAIN_CHAIN.fullmatch(text) else None
    try:
        return Path(text, jmespath.compile(text), steps)
    except jmespath.exceptions.JMESPathError as exc:
        raise ContractFileError(f"{where}: bad path {text!r}: {exc}".splitlines()[0]) from None


_PLAIN_CHAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def touched(path: str, changed: frozenset[str]) -> bool:
    """Whether an UPDATE's changed fields (``Phone``, ``Name.LastName``) include ``path``."""
    return any(path == c or path.startswith(c + ".") or c.startswith(path + ".") for c in changed)


def wrong(reason: str) -> Missing:
    """A value of the wrong shape: never stored as null, never as its repr."""
    return Missing(reason, fatal=True, wrong_shape=True)


def kind_of(value: Any) -> str:
    """What a payload value is, in words for an error: ``a number (5)``, ``an array``."""
    if value is None:
        return "null"
    if type(value) is bool:
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    kinds: dict[type, str] = {list: "an array", str: "text", dict: "an object"}
    return kinds.get(type(value), "a value")


def _chars(text: str) -> int:
    return len(unicodedata.normalize("NFC", text))
