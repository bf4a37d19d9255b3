"""The folders keep their promises: what each layer may import, followed through every import
(module-level and lazy) of every module in ``service/``."""

from __future__ import annotations

import ast
import graphlib
from functools import cache
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"

KAFKA = {"aiokafka", "faststream", "confluent_kafka"}
HTTP_CLIENTS = {"aiohttp", "httpx", "httpx_aiohttp"}
REDIS = {"redis"}
WIRING = ("service.app", "service.cli", "service.__main__", "service.dev.")
"""The composition root, the command line that starts it, and the development stack (the
demo runs the whole service in-process). Not ``service.wiring``: each of the root's builders
keeps to one side."""


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
        ("service.registry", KAFKA | REDIS),
        ("service.state", KAFKA | HTTP_CLIENTS),
        ("service.lanes", KAFKA | HTTP_CLIENTS),
        ("service.answers", HTTP_CLIENTS | REDIS),
        ("service.offsets", HTTP_CLIENTS | REDIS),
        # The operators' console reads Kafka and Redis; it never calls a Cloud Connector.
        ("service.console", HTTP_CLIENTS),
    ],
)
def test_each_folder_reaches_only_its_side(folder: str, forbidden: set[str]) -> None:
    offending = {
        name: sorted(libraries(name) & forbidden)
        for name in MODULES
        if (name == folder or name.startswith(folder + ".")) and libraries(name) & forbidden
    }
    assert offending == {}


def test_only_the_command_line_starts_the_console() -> None:
    """The console is its own process: the data plane never imports it (and so never serves
    its pages), only ``sagebridge console`` does."""
    importers = sorted(
        name
        for name in MODULES
        if not name.startswith("service.console")
        and any(i.startswith("service.console") for i in direct_imports(name))
    )
    assert importers == ["service.cli"]


def test_intake_is_handed_its_stores_never_imports_them() -> None:
    """Intake stays pure: the image step reaches Redis only through the store it is given
    (:mod:`service.intake.image_step`), so no intake module imports the state layer."""
    offending = {
        name: sorted(i for i in direct_imports(name) if i.startswith("service.state"))
        for name in MODULES
        if name.startswith("service.intake")
    }
    assert {k: v for k, v in offending.items() if v} == {}


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


SETTINGS = (
    "service.errors",
    "service.config",
    "service.settings",
    "service.tenants",
    "service.token_file",
    "service.topic_names",
    "service.field_errors",
    "service.redaction",
)
"""Settings, tenants, errors and the shared types they are made of: read first, by everyone."""

FLOORS: tuple[tuple[str, ...], ...] = (
    SETTINGS,
    ("service.offsets", "service.answers"),
    ("service.intake",),
    ("service.state", "service.connector", "service.registry"),
    ("service.kafka", "service.ops"),
    ("service.lanes", "service.tools", "service.console"),
    ("service.bridge", "service.answering"),
    ("service.wiring",),
    ("service.app",),
    ("service.dev",),
    ("service.cli", "service.__main__", "service"),
)
"""Bottom to top: a module imports only from its own floor or below, as the event's path runs
(settings, then what is read and answered, then the edges, then the lanes and the wiring)."""

UPWARD = {
    ("service.answers.producer", "service.kafka.security"): (
        "the producer that answers and the consumer that reads share the one set of Kafka "
        "TLS/SASL options; kafka/ is where every Kafka client is configured"
    ),
    ("service.ops.tenant_states", "service.lanes.breaker"): (
        "the breaker's metric names the breaker's own State; a copy of the enum in ops/ would "
        "be a second state machine to keep in step"
    ),
    ("service.ops.breaker_board", "service.lanes.breaker"): (
        "the console's report of the breakers reads the breaker's own State, for the same reason"
    ),
}
"""The imports that run back up a floor, each with the reason it is allowed."""


def floor_of(name: str) -> int:
    best, found = -1, -1
    for number, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), number
    assert found >= 0, f"{name} stands on no floor: add it to FLOORS"
    return found


def service_imports(name: str) -> set[str]:
    """The service modules ``name`` imports (a name imported from a module counts as it)."""
    return {i for i in direct_imports(name) if i in MODULES}


def test_settings_import_nothing_above_them() -> None:
    above = {
        name: sorted(i for i in service_imports(name) if not i.startswith(SETTINGS))
        for name in MODULES
        if name.startswith(SETTINGS)
    }
    assert {name: found for name, found in above.items() if found} == {}


def test_no_import_runs_back_up_a_floor_unless_justified() -> None:
    upward = {
        (name, imported)
        for name in MODULES
        for imported in service_imports(name)
        if floor_of(imported) > floor_of(name)
    }
    assert upward == set(UPWARD)


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph = {name: service_imports(name) - {name} for name in MODULES}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail("import circle: " + " -> ".join(exc.args[1]))
