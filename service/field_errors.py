"""A field that broke its table's contract, as data: what intake finds and an ERROR reply carries.

Shared by intake (which finds them) and answers (which report them), so it sits below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Why a field failed its contract; stable strings that replies carry."""

    TOO_LONG = "too_long"
    TOO_MANY_DIGITS = "too_many_digits"
    TOO_MANY_DECIMALS = "too_many_decimals"
    NOT_NUMERIC = "not_numeric"
    MISSING = "missing"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    CONTROL_CHARACTER = "control_character"
    TOO_DEEP = "too_deep"
    TOO_MANY_VALUES = "too_many_values"
    UNMAPPED = "unmapped"
    """A CRM mapping could not produce the element; ``detail`` names the CRM field and why."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field that broke its contract. ``limit``/``actual`` are lengths or digit counts."""

    field: str
    code: ErrorCode
    limit: int | None = None
    actual: int | None = None
    detail: str | None = None
    """For :attr:`ErrorCode.UNMAPPED`: which CRM field or look-up failed, in words; for
    :attr:`ErrorCode.WRONG_TYPE` from a mapping: the payload path and what was found there."""

    def describe(self) -> str:
        """A sentence an operator can act on: ``ContactName: at most 30 characters, got 41``."""
        match self.code:
            case ErrorCode.TOO_LONG:
                return f"{self.field}: at most {self.limit} characters, got {self.actual}"
            case ErrorCode.TOO_MANY_DIGITS:
                return (
                    f"{self.field}: at most {self.limit} digits before the decimal point, "
                    f"got {self.actual}"
                )
            case ErrorCode.TOO_MANY_DECIMALS:
                return f"{self.field}: at most {self.limit} decimal places, got {self.actual}"
            case ErrorCode.NOT_NUMERIC:
                return f"{self.field}: not a plain decimal number"
            case ErrorCode.MISSING:
                return f"{self.field}: required key element is missing"
            case ErrorCode.UNKNOWN_FIELD:
                return f"{self.field}: not an element of this table"
            case ErrorCode.WRONG_TYPE:
                return f"{self.field}: {self.detail or 'wrong JSON type for this element'}"
            case ErrorCode.CONTROL_CHARACTER:
                return (
                    f"{self.field}: control character at position {self.actual} "
                    "(only tab, CR and LF are allowed)"
                )
            case ErrorCode.TOO_DEEP:
                return f"{self.field}: nested more than {self.limit} levels deep"
            case ErrorCode.TOO_MANY_VALUES:
                return f"{self.field}: the record holds more than {self.limit} values"
            case ErrorCode.UNMAPPED:
                return f"{self.field}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "code": str(self.code)}
        if self.limit is not None:
            out["limit"] = self.limit
        if self.actual is not None:
            out["actual"] = self.actual
        if self.detail is not None:
            out["detail"] = self.detail
        return out
