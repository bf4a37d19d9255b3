"""A newcomer reads a class in one sitting and a module in a few: no class in ``service/`` over
200 lines, no module over 400. Past that, a class holds two ideas; split it where they part."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
SOURCES = sorted(SERVICE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(SERVICE)): n
        for p in SOURCES
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


def test_no_class_is_over_200_lines() -> None:
    long = {
        f"{p.relative_to(SERVICE)}:{node.name}": size
        for p in SOURCES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ClassDef)
        and (size := (node.end_lineno or node.lineno) - node.lineno + 1) > 200
    }
    assert long == {}
