"""Reading the mapping files (``contracts/mappings/*.yaml``) into :class:`Mapping` values, checked
against their contracts at start-up.

A file that cannot work refuses start-up with one line (:class:`ContractFileError`): an element
its contract does not have, a key it never fills, a declared truncation or a constant longer
than its element, a look-up of a table or column that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from pathlib import Path
from typing import Any

import yaml

from service.errors import ContractFileError
from service.intake.contracts import Contract
from service.intake.image_rules import load_image_rules
from service.intake.mapping_sources import Source, compile_source
from service.intake.mappings import Changes, Compound, Mapping
from service.intake.xref import CrossReference


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
    compounds = _compounds(raw.get("compound"), where)
    aliases = {
        flat: f"{c.field}.{component}"
        for c in compounds
        for component, flat in c.components.items()
    }
    paths = [p for source in elements.values() for p in source.paths()]
    feed = (changes.record_ids, changes.changed_fields) if changes is not None else None
    image = load_image_rules(raw.get("image"), paths, feed, tables, where)
    return Mapping(path.stem, contract, elements, ids, changes, compounds, aliases, image)


def _compounds(raw: Any, where: str) -> tuple[Compound, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(
        isinstance(c, dict) and all(isinstance(v, str) for v in c.values()) for c in raw.values()
    ):
        raise ContractFileError(
            f"{where}: compound maps a field to {{component: flattened name}}, "
            "e.g. Name: {FirstName: FirstName}"
        )
    return tuple(
        Compound(str(name), {str(k): v for k, v in components.items()})
        for name, components in raw.items()
    )


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
