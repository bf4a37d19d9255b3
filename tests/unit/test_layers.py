"""The folders keep their promises: what each layer may import, followed through every import
(module-level and lazy) of every module in ``service/``."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"

KAFKA = {"aiokafka", "faststream", "confluent_kafka"}
HTTP_CLIENTS = {"aiohttp", "httpx", "httpx_aiohttp"}
REDIS = {"redis"}
WIRING = ("service.app", "service.cli", "service.__main__", "service.dev.")
"""The composition root, the command line that starts it, and the development stack (the
demo runs the whole service in-process)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SERVICE.rglob("*.py")}


def direct_imports(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@cache
def libraries(name: str) -> frozenset[str]:
    """Third-party top-level packages ``name`` reaches, through service modules too."""
    reached: set[str] = set()
    seen, todo = {name}, [name]
    while todo:
        for imported in direct_imports(todo.pop()):
            if not imported.startswith("service"):
                reached.add(imported.split(".")[0])
            elif imported in MODULES and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return frozenset(reached)


def test_the_scan_sees_the_libraries_it_judges() -> None:
    assert libraries("service.connector.client") & HTTP_CLIENTS
    assert libraries("service.offsets.committer") & KAFKA
    assert libraries("service.state.ledger") & REDIS
    assert libraries("service.app") & KAFKA and libraries("service.app") & HTTP_CLIENTS


def test_only_the_wiring_reaches_both_kafka_and_the_connector() -> None:
    both = sorted(
        name
        for name in MODULES
        if libraries(name) & KAFKA
        and libraries(name) & HTTP_CLIENTS
        and not name.startswith(WIRING)
    )
    assert both == []


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("service.intake", KAFKA | HTTP_CLIENTS | REDIS),
        ("service.connector", KAFKA | REDIS),
        ("service.state", KAFKA | HTTP_CLIENTS),
        ("service.lanes", KAFKA | HTTP_CLIENTS),
        ("service.answers", HTTP_CLIENTS | REDIS),
        ("service.offsets", HTTP_CLIENTS | REDIS),
    ],
)
def test_each_folder_reaches_only_its_side(folder: str, forbidden: set[str]) -> None:
    offending = {
        name: sorted(libraries(name) & forbidden)
        for name in MODULES
        if (name == folder or name.startswith(folder + ".")) and libraries(name) & forbidden
    }
    assert offending == {}


@pytest.mark.parametrize("folder", ["service.lanes"])
def test_the_lanes_hear_of_redis_only_through_state(folder: str) -> None:
    """``state/`` raises its own errors (:class:`~service.errors.StateUnavailable`), so the
    lanes' logic runs against in-memory stand-ins: no lane module imports redis itself."""
    offending = {
        name: sorted(i for i in direct_imports(name) if i.split(".")[0] in REDIS)
        for name in MODULES
        if name.startswith(folder + ".")
    }
    assert {name: found for name, found in offending.items() if found} == {}
