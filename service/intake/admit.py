"""Intake: envelope -> tenant -> reply topic -> route -> mapping -> contract check. Pure:
bytes in, a decision out.

The envelope is our own JSON, or a CloudEvent (:mod:`service.intake.cloudevents`), or on a
topic bound to a route the CRM's raw payload. A route with a mapping builds the Sage record from
the CRM's payload first (:mod:`service.intake.mappings`).

Either the event is :class:`Admitted` (ready for its lane) or :class:`Refused` with the outcome
to report. Refusals never reach the Cloud Connector, and the tenant used for a call is always
the configured one looked up here — never strings copied from the event into HTTP headers.

A refusal is answered on the event's ``reply_to`` only once its tenant is known and may use
that topic (:mod:`service.intake.topics`); before that — a parse failure, an unknown tenant, a
refused ``reply_to`` — it goes to the default reply topic.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from service.answers.outcomes import Outcome, Stage, Subject
from service.field_errors import FieldError
from service.intake.cloudevents import Headers, cloudevent_mode, read_cloudevent
from service.intake.contracts import check_free_form, describe_errors
from service.intake.envelope import NO_SCHEMAS, Event, ParseFailure, parse_event, parse_payload
from service.intake.image_rules import ImageKey
from service.intake.images import image_keys
from service.intake.mappings import DEFAULT_MAX_RECORD_IDS, Mapped, Mapping, Unmapped
from service.intake.routes import Route, RouteTable
from service.intake.topics import ReplyTopics
from service.intake.wire import SchemaBook
from service.tenants import Tenant, TenantDirectory


@dataclass(slots=True)
class Admitted:
    event: Event
    route: Route
    tenant: Tenant
    identity: Hashable | None
    parts: tuple[Admitted, ...] = ()
    """An event that stands for several Sage records (a change to several CRM records at
    once): one admitted record each, under ``<event_id>/<record id>``; the event itself is
    answered once, when all of them are (see :mod:`service.answers.joined`)."""

    @property
    def reply_to(self) -> str | None:
        return self.event.reply_to

    @property
    def subject(self) -> Subject:
        return _subject(self.event, self.tenant, self.route)


@dataclass(frozen=True, slots=True)
class Imaging:
    """Taken in up to its mapping, which keeps record images: the image step
    (:mod:`service.intake.image_step`) reads ``keys``, merges and builds, and hands the result
    to :meth:`Intake.finish`."""

    event: Event
    route: Route
    tenant: Tenant
    mapping: Mapping
    keys: tuple[ImageKey, ...]

    @property
    def reply_to(self) -> str | None:
        return self.event.reply_to

    @property
    def subject(self) -> Subject:
        return _subject(self.event, self.tenant, self.route)


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
    schemas: SchemaBook = field(default_factory=lambda: NO_SCHEMAS)
    """Schema Registry schemas by id, fetched before each poll is taken in
    (:mod:`service.registry.cache`); read here, never fetched."""
    max_record_ids: int = DEFAULT_MAX_RECORD_IDS
    """Most CRM records one event may stand for (``SAGEBRIDGE_MAX_RECORD_IDS``)."""

    def admit(
        self, value: bytes | None, headers: Headers = (), topic: str | None = None
    ) -> Admitted | Refused | Imaging:
        """Decide on one record (or stop it for the image step): its value, and where its
        shape is told outside the value, its headers (a CloudEvent in binary mode) and topic
        (one bound to a route)."""
        parsed = self._read(value, headers, topic)
        if isinstance(parsed, ParseFailure):
            subject = Subject(parsed.event_id, parsed.correlation_id, parsed.type)
            return Refused(subject, Outcome.failure(Stage.PARSE, parsed.reason), None)
        event = parsed
        route = self.routes.get(event.type)
        tenant = self.tenants.resolve(event.customer, event.company)
        if tenant is None:
            if route is None:
                return Refused(_unrouted(event), self._no_route(event.type), None)
            who = (
                "no tenant given and no default tenant configured"
                if event.customer is None and event.company is None
                else f"unknown tenant customer={event.customer!r} company={event.company!r}"
            )
            return Refused(_unrouted(event), Outcome.failure(Stage.ROUTE, f"tenant: {who}"), None)
        if event.reply_to is not None:
            refusal = self.reply_topics.refusal(event.reply_to, tenant)
            if refusal is not None:
                message = f"reply_to: topic {event.reply_to!r} is not allowed: {refusal}"
                return Refused(_unrouted(event), Outcome.failure(Stage.ROUTE, message), None)
        if route is None:
            return Refused(_unrouted(event), self._no_route(event.type), event.reply_to)
        if route.mapping is not None and route.mapping.image is not None:
            keys = tuple(image_keys(route.mapping, event.data))
            if len(keys) <= self.max_record_ids:  # past it, refused below without images
                return Imaging(event, route, tenant, route.mapping, keys)
        if route.mapping is not None:
            mapped = route.mapping.apply(event.data, self.max_record_ids)
            return self._mapped(event, route, route.mapping, tenant, mapped)
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

    def _read(
        self, value: bytes | None, headers: Headers, topic: str | None
    ) -> Event | ParseFailure:
        bound = self.routes.bound(topic)
        if bound is not None and bound.mapping is not None:
            return parse_payload(
                value, self.max_event_bytes, bound.type, bound.mapping.event_id_of, self.schemas
            )
        mode = cloudevent_mode(headers) if headers else None
        if mode is not None:
            return read_cloudevent(value, headers, mode, self.max_event_bytes)
        return parse_event(value, self.max_event_bytes, self.schemas)

    def finish(self, stopped: Imaging, mapped: Mapped | Unmapped) -> Admitted | Refused:
        """Decide on an event stopped for the image step, with the records it built."""
        return self._mapped(stopped.event, stopped.route, stopped.mapping, stopped.tenant, mapped)

    def _mapped(
        self,
        event: Event,
        route: Route,
        mapping: Mapping,
        tenant: Tenant,
        mapped: Mapped | Unmapped,
    ) -> Admitted | Refused:
        """A CRM payload mapped to Sage records, each checked against the route's contract."""
        subject = Subject(
            event.event_id, event.correlation_id, event.type, tenant.key, route.endpoint
        )
        if isinstance(mapped, Unmapped):
            outcome = Outcome.failure(mapped.stage, mapped.message, mapped.errors)
            return Refused(subject, outcome, event.reply_to)
        contract = mapping.contract
        errors: list[FieldError] = []
        parts: list[Admitted] = []
        several = len(mapped.records) > 1
        for record_id, record in mapped.records:
            errors.extend(contract.check(record))
            event_id = f"{event.event_id}/{record_id}" if several else event.event_id
            one = replace(event, event_id=event_id, data=record)
            parts.append(Admitted(one, route, tenant, contract.identity(record)))
        if errors:
            unique = list(dict.fromkeys(errors))
            outcome = Outcome.failure(Stage.VALIDATION, describe_errors(unique), unique)
            return Refused(subject, outcome, event.reply_to)
        if not several:
            return parts[0]
        return Admitted(event, route, tenant, None, tuple(parts))

    def _no_route(self, event_type: str) -> Outcome:
        known = ", ".join(sorted(self.routes.routes))
        return Outcome.failure(Stage.ROUTE, f"type: no route for {event_type!r} (known: {known})")


def _unrouted(event: Event) -> Subject:
    """What a reply repeats of an event refused before its route and tenant were settled:
    made only for such a refusal, since every admitted event has its own subject."""
    return Subject(event.event_id, event.correlation_id, event.type)


def _subject(event: Event, tenant: Tenant, route: Route) -> Subject:
    """What a reply repeats of an event taken in as far as its route and tenant."""
    return Subject(event.event_id, event.correlation_id, event.type, tenant.key, route.endpoint)
