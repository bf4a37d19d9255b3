"""``sagebridge validate``: check JSON-lines events against the contracts, offline.

An integration engineer preparing a CRM feed wants every problem the service would refuse, with
the line it is on, before anything is sent. So each line goes through the service's own
:class:`~service.intake.admit.Intake` — the same parse, route and contract checks, the same messages
the ERROR replies carry — and nothing here re-implements a rule.

The one check left out is the tenant: offline there is no tenant configuration, so any tenant
(or none) is accepted. Mapped routes (a CRM's own payload, ``contracts/mappings/``) are mapped
exactly as the service maps them, cross-reference tables included; ``--explain`` prints the
Sage record each valid line becomes.
"""

from __future__ import annotations

import io
from typing import TextIO

import orjson
from pydantic import SecretStr

from service.config import Settings
from service.intake.admit import Admitted, Intake, Refused
from service.intake.routes import load_route_table
from service.intake.topics import ReplyTopics
from service.tenants import Tenant, TenantDirectory

OFFLINE = "offline"


class _AnyTenant(TenantDirectory):
    """Accepts every tenant: whether it is configured is a deployment question, not the feed's."""

    def resolve(self, customer: str | None, company: str | None) -> Tenant | None:
        return Tenant(customer or OFFLINE, company or OFFLINE, SecretStr(""))


def offline_intake(settings: Settings) -> Intake:
    """The service's intake with the tenant check switched off."""
    tenants = _AnyTenant(tenants={}, default=None)
    return Intake(
        load_route_table(settings.contracts_dir),
        tenants,
        settings.max_event_bytes,
        ReplyTopics.from_settings(settings),
    )


def validate_lines(stream: TextIO, out: TextIO, settings: Settings, explain: bool = False) -> int:
    """Print one line per problem and a summary; 1 if any event is invalid, else 0. With
    ``explain``, also each valid event's record as it would be sent (after its route's mapping,
    one line per Sage record)."""
    intake = offline_intake(settings)
    events = invalid = 0
    for number, line in enumerate(_tolerant(stream), start=1):
        raw = line.rstrip("\r\n")
        if not raw.strip():
            continue
        events += 1
        decision = _decide(intake, raw)
        problems = problems_of(decision)
        if explain and isinstance(decision, Admitted):
            for shown in explain_admitted(decision):
                out.write(f"line {number}{shown}\n")
        if problems:
            invalid += 1
            for problem in problems:
                out.write(f"line {number}{problem}\n")
    out.write(f"{events} events, {invalid} invalid\n")
    return 1 if invalid else 0


def check_line(intake: Intake, line: str) -> list[str]:
    """The problems of one line, each as ``" (event_id): message"`` (id left out if unknown)."""
    return problems_of(_decide(intake, line))


def explain_admitted(decision: Admitted) -> list[str]:
    """What would be sent for an admitted event: ``" (event_id): /endpoint <- {record}"``,
    one per Sage record (an event naming several CRM records makes several)."""
    return [
        f" ({part.event.event_id}): {part.route.endpoint} <- "
        + orjson.dumps(part.event.data).decode()
        for part in decision.parts or (decision,)
    ]


def _decide(intake: Intake, line: str) -> Admitted | Refused:
    # Undecodable bytes arrive as lone surrogates (errors="surrogateescape"): turning them back
    # into the original bytes lets the parser report them exactly as the service would.
    return intake.admit(line.encode("utf-8", errors="surrogateescape"))


def problems_of(decision: Admitted | Refused) -> list[str]:
    """A refusal's problems, each as ``" (event_id): message"`` (id left out if unknown)."""
    if not isinstance(decision, Refused):
        return []
    where = f" ({decision.subject.event_id})" if decision.subject.event_id else ""
    outcome = decision.outcome
    if outcome.errors:
        return [f"{where}: {error.describe()} [{error.code}]" for error in outcome.errors]
    return [f"{where}: {outcome.message}"]


def _tolerant(stream: TextIO) -> TextIO:
    """``stream``, switched to ``surrogateescape`` if it is a strict text file (stdin), so a
    line that is not UTF-8 is reported instead of ending the run with a traceback."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        stream.reconfigure(errors="surrogateescape")
    return stream
