"""Routes: which lane, endpoint and contract an event ``type`` goes to — read from data.

Adding a table or a route is adding a file under ``contracts/``; nothing here names a table.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from service.config import DEFAULT_CONTRACTS_DIR
from service.errors import ContractFileError
from service.intake.contracts import Contract, load_contracts
from service.intake.mapping_files import load_mappings
from service.intake.mappings import Mapping
from service.intake.xref import load_cross_references


class Lane(StrEnum):
    BATCH = "batch"
    """Master data: records of one tenant and endpoint share one JSON-array call."""
    SERIAL = "serial"
    """Transactional: one record per call, never two calls at once for a tenant."""


@dataclass(frozen=True, slots=True)
class Route:
    type: str
    lane: Lane
    endpoint: str
    contract: Contract | None
    """``None``: any JSON object is accepted (operator supplied no contract)."""
    lookup: MappingOf[str, str] | None = None
    """Key element -> query parameter of the Connector's list GET, used to check whether a
    record cut off by a crash already reached Sage."""
    mapping: Mapping | None = None
    """How the Sage record is built from a CRM's own payload (``contracts/mappings/``)."""
    batch_max: int = 1
    """Serial routes: most queued records one call carries, as one JSON array (1: one record
    per call, sent as a JSON object)."""
    atomic_arrays: bool = False
    """Serial routes: a refused array stored none of its records, so it may be split and its
    parts resent. Otherwise a refused array's records are all in doubt."""
    resend_if_absent: bool = False
    """Serial routes with a ``lookup``: a record in doubt that the look-up does not find in
    Sage is sent again (otherwise it stays ``unknown_outcome`` for a person)."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: MappingOf[str, Route]
    contracts: MappingOf[str, Contract]
    topics: MappingOf[str, str] = field(default_factory=dict)
    """Input topics bound to one route: their records are the CRM's raw payloads."""

    def get(self, event_type: str) -> Route | None:
        return self.routes.get(event_type)

    def bound(self, topic: str | None) -> Route | None:
        """The route a topic is bound to, if it is (its records carry no envelope)."""
        if topic is None or not self.topics:
            return None
        event_type = self.topics.get(topic)
        return None if event_type is None else self.routes.get(event_type)

    def by_endpoint(self, endpoint: str) -> Route | None:
        """The route serving ``endpoint``; the sandbox uses it to check what it receives."""
        for route in self.routes.values():
            if route.endpoint == endpoint:
                return route
        return None


def load_route_table(directory: Path = DEFAULT_CONTRACTS_DIR) -> RouteTable:
    """``directory/routes.yaml`` plus the contracts in ``directory/tables/``.

    Raises :class:`ContractFileError` naming the file and entry when the data is inconsistent,
    so a bad deployment fails at start-up rather than on the first event.
    """
    contracts = load_contracts(directory / "tables")
    mappings = load_mappings(
        directory / "mappings", contracts, load_cross_references(directory / "xref")
    )
    path = directory / "routes.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContractFileError(f"cannot read route table {path}: {exc.strerror}") from None
    entries = raw.get("routes") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise ContractFileError(f"{path}: expected 'routes:' mapping event type -> route")
    routes = {
        str(t): _route(path, str(t), spec, contracts, mappings) for t, spec in entries.items()
    }
    return RouteTable(routes=routes, contracts=contracts, topics=_topics(path, raw, routes))


def _topics(path: Path, raw: dict[str, Any], routes: MappingOf[str, Route]) -> dict[str, str]:
    topics = raw.get("topics") or {}
    if not isinstance(topics, dict):
        raise ContractFileError(f"{path}: 'topics:' maps an input topic to a route")
    for topic, event_type in topics.items():
        route = routes.get(str(event_type))
        if route is None or route.mapping is None:
            raise ContractFileError(
                f"{path}: topic {topic} is bound to {event_type!r}, which is not a route "
                "with a mapping (a raw payload needs one to make its record and event_id)"
            )
        if not route.mapping.event_id:
            raise ContractFileError(
                f"{path}: topic {topic}: mapping {route.mapping.name} has no event_id"
            )
    return {str(t): str(r) for t, r in topics.items()}


def _route(
    path: Path,
    event_type: str,
    spec: Any,
    contracts: MappingOf[str, Contract],
    mappings: MappingOf[str, Mapping],
) -> Route:
    if not isinstance(spec, dict):
        raise ContractFileError(f"{path}: route {event_type} must be a mapping")
    try:
        lane = Lane(str(spec.get("lane")))
    except ValueError:
        raise ContractFileError(
            f"{path}: route {event_type}: lane must be batch or serial, got {spec.get('lane')!r}"
        ) from None
    endpoint = spec.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("/"):
        raise ContractFileError(f"{path}: route {event_type}: endpoint must start with '/'")
    contract_name = spec.get("contract")
    contract = None
    if contract_name is not None:
        contract = contracts.get(str(contract_name))
        if contract is None:
            raise ContractFileError(
                f"{path}: route {event_type}: no contract tables/{contract_name}.yaml"
            )
    elif lane is Lane.BATCH:
        raise ContractFileError(f"{path}: route {event_type}: a batch route needs a contract")
    lookup = _lookup(path, event_type, lane, contract, spec.get("lookup"))
    resend_if_absent = _resend_if_absent(path, event_type, lane, lookup, spec)
    mapping = None
    if (mapping_name := spec.get("mapping")) is not None:
        mapping = mappings.get(str(mapping_name))
        if mapping is None:
            raise ContractFileError(
                f"{path}: route {event_type}: no mapping mappings/{mapping_name}.yaml"
            )
        if contract is None or mapping.contract.name != contract.name:
            raise ContractFileError(
                f"{path}: route {event_type}: mapping {mapping_name} builds "
                f"{mapping.contract.name} records, the route's contract is {contract_name}"
            )
    batch_max, atomic_arrays = _arrays(path, event_type, lane, spec)
    return Route(
        type=event_type,
        lane=lane,
        endpoint=endpoint,
        contract=contract,
        lookup=lookup,
        mapping=mapping,
        batch_max=batch_max,
        atomic_arrays=atomic_arrays,
        resend_if_absent=resend_if_absent,
    )


def _lookup(
    path: Path, event_type: str, lane: Lane, contract: Contract | None, spec: Any
) -> dict[str, str] | None:
    """A route's ``lookup``: key element -> query parameter of the Connector's list GET.

    A batch route maps exactly its contract's keys (an upsert is found by its key). A serial
    route names the elements that identify one transaction in Sage (an invoice number, say):
    of its contract if it has one, any element otherwise, since the record is the operator's."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not spec or (lane is Lane.BATCH and contract is None):
        raise ContractFileError(
            f"{path}: route {event_type}: lookup is a mapping of key elements to query parameters"
        )
    if lane is Lane.BATCH and contract is not None and set(spec) != set(contract.keys):
        raise ContractFileError(
            f"{path}: route {event_type}: lookup must map exactly the keys {contract.keys}"
        )
    if lane is Lane.SERIAL and contract is not None:
        unknown = sorted(set(map(str, spec)) - set(contract.elements))
        if unknown:
            raise ContractFileError(
                f"{path}: route {event_type}: lookup names elements not in the contract: {unknown}"
            )
    return {str(k): str(v) for k, v in spec.items()}


def _resend_if_absent(
    path: Path, event_type: str, lane: Lane, lookup: dict[str, str] | None, spec: Any
) -> bool:
    """A serial route's ``resend_if_absent`` (default false): only a route that names a
    ``lookup`` may send a record in doubt again, and only once Sage was checked."""
    value = spec.get("resend_if_absent", False)
    if "resend_if_absent" in spec and (lane is not Lane.SERIAL or lookup is None):
        raise ContractFileError(
            f"{path}: route {event_type}: resend_if_absent is for serial routes with a lookup"
        )
    if not isinstance(value, bool):
        raise ContractFileError(
            f"{path}: route {event_type}: resend_if_absent must be true or false, got {value!r}"
        )
    return value


def _arrays(path: Path, event_type: str, lane: Lane, spec: dict[str, Any]) -> tuple[int, bool]:
    """A serial route's ``batch_max`` (a whole number >= 1, default 1) and ``atomic_arrays``
    (true or false, default false: a refused array is in doubt unless the operator knows
    the Connector stores arrays all or nothing)."""
    batch_max = spec.get("batch_max", 1)
    atomic = spec.get("atomic_arrays", False)
    if lane is not Lane.SERIAL and ("batch_max" in spec or "atomic_arrays" in spec):
        raise ContractFileError(
            f"{path}: route {event_type}: batch_max and atomic_arrays are for serial routes "
            "(batch routes use SAGEBRIDGE_BATCH_MAX)"
        )
    if not isinstance(batch_max, int) or isinstance(batch_max, bool) or batch_max < 1:
        raise ContractFileError(
            f"{path}: route {event_type}: batch_max must be a whole number >= 1, got {batch_max!r}"
        )
    if not isinstance(atomic, bool):
        raise ContractFileError(
            f"{path}: route {event_type}: atomic_arrays must be true or false, got {atomic!r}"
        )
    return batch_max, atomic
