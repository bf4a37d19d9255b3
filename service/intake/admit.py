"""Intake: envelope -> tenant -> reply topic -> route -> contract check. Pure: bytes in, a
decision out.

Either the event is :class:`Admitted` (ready for its lane) or :class:`Refused` with the outcome
to report. Refusals never reach the Cloud Connector, and the tenant used for a call is always
the configured one looked up here — never strings copied from the event into HTTP headers.

A refusal is answered on the event's ``reply_to`` only once its tenant is known and may use
that topic (:mod:`service.intake.topics`); before that — a parse failure, an unknown tenant, a
refused ``reply_to`` — it goes to the default reply topic.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from service.answers.outcomes import Outcome, Stage, Subject
from service.intake.contracts import check_free_form, describe_errors
from service.intake.envelope import Event, ParseFailure, parse_event
from service.intake.routes import Route, RouteTable
from service.intake.topics import ReplyTopics
from service.tenants import Tenant, TenantDirectory


@dataclass(slots=True)
class Admitted:
    event: Event
    route: Route
    tenant: Tenant
    identity: Hashable | None

    @property
    def reply_to(self) -> str | None:
        return self.event.reply_to

    @property
    def subject(self) -> Subject:
        return Subject(
            self.event.event_id,
            self.event.correlation_id,
            self.event.type,
            self.tenant.key,
            self.route.endpoint,
        )


@dataclass(frozen=True, slots=True)
class Refused:
    subject: Subject
    outcome: Outcome
    reply_to: str | None


@dataclass(frozen=True, slots=True)
class Intake:
    routes: RouteTable
    tenants: TenantDirectory
    max_event_bytes: int
    reply_topics: ReplyTopics

    def admit(self, value: bytes | None) -> Admitted | Refused:
        parsed = parse_event(value, self.max_event_bytes)
        if isinstance(parsed, ParseFailure):
            subject = Subject(parsed.event_id, parsed.correlation_id, parsed.type)
            return Refused(subject, Outcome.failure(Stage.PARSE, parsed.reason), None)
        event = parsed
        subject = Subject(event.event_id, event.correlation_id, event.type)
        route = self.routes.get(event.type)
        tenant = self.tenants.resolve(event.customer, event.company)
        if tenant is None:
            if route is None:
                return Refused(subject, self._no_route(event.type), None)
            who = (
                "no tenant given and no default tenant configured"
                if event.customer is None and event.company is None
                else f"unknown tenant customer={event.customer!r} company={event.company!r}"
            )
            return Refused(subject, Outcome.failure(Stage.ROUTE, f"tenant: {who}"), None)
        if event.reply_to is not None:
            refusal = self.reply_topics.refusal(event.reply_to, tenant)
            if refusal is not None:
                message = f"reply_to: topic {event.reply_to!r} is not allowed: {refusal}"
                return Refused(subject, Outcome.failure(Stage.ROUTE, message), None)
        if route is None:
            return Refused(subject, self._no_route(event.type), event.reply_to)
        contract = route.contract
        errors = contract.check(event.data) if contract is not None else check_free_form(event.data)
        if errors:
            subject = Subject(
                event.event_id, event.correlation_id, event.type, tenant.key, route.endpoint
            )
            outcome = Outcome.failure(Stage.VALIDATION, describe_errors(errors), errors)
            return Refused(subject, outcome, event.reply_to)
        identity = contract.identity(event.data) if contract is not None else None
        return Admitted(event, route, tenant, identity)

    def _no_route(self, event_type: str) -> Outcome:
        known = ", ".join(sorted(self.routes.routes))
        return Outcome.failure(Stage.ROUTE, f"type: no route for {event_type!r} (known: {known})")
