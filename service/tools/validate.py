"""``sagebridge validate``: check JSON-lines events against the contracts, offline.

An integration engineer preparing a CRM feed wants every problem the service would refuse, with
the line it is on, before anything is sent. So each line goes through the service's own
:class:`~service.intake.admit.Intake` — the same parse, route and contract checks, the same messages
the ERROR replies carry — and nothing here re-implements a rule.

The one check left out is the tenant: offline there is no tenant configuration, so any tenant
(or none) is accepted. Mapped routes (a CRM's own payload, ``contracts/mappings/``) are mapped
exactly as the service maps them, cross-reference tables included; ``--explain`` prints the
Sage record each valid line becomes.

A mapping that keeps record images (``image:``) builds an UPDATE from its record's image. Here
images are read from Redis when it answers (read-only: nothing is written) and merged in memory
line by line, so a file holding a CREATE and then an UPDATE checks as the service would take
them; ``--explain`` prints the image each such event was merged onto. When Redis does not
answer, every record starts without an image (as after a loss of Redis data) and the run says
so once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TextIO

import orjson
from pydantic import SecretStr

from service.config import Settings
from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.image_rules import Image, ImageKey
from service.intake.images import ImageBook, build
from service.intake.mapping_sources import Context
from service.intake.routes import load_route_table
from service.intake.topics import ReplyTopics
from service.tenants import Tenant, TenantDirectory

OFFLINE = "offline"

ImageReader = Callable[[Sequence[ImageKey]], dict[ImageKey, Image | None] | None]
"""Reads stored images (``None``: the store does not answer)."""


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


def validate_lines(
    stream: TextIO,
    out: TextIO,
    settings: Settings,
    explain: bool = False,
    images: ImageReader | None = None,
) -> int:
    """Print one line per problem and a summary; 1 if any event is invalid, else 0. With
    ``explain``, also each valid event's record as it would be sent (after its route's mapping,
    one line per Sage record), and the image an event was merged onto. ``images`` reads stored
    record images (none are used without it)."""
    intake = offline_intake(settings)
    book = _Images(images, out)
    events = invalid = 0
    for number, line in enumerate(_tolerant(stream), start=1):
        raw = line.rstrip("\r\n")
        if not raw.strip():
            continue
        events += 1
        taken = _take_in(intake, raw)
        if isinstance(taken, Imaging):
            onto = book.before(taken.keys)
            decision = intake.finish(
                taken, build(taken.mapping, taken.event.data, book.book, settings.image_bound)
            )
            if explain and _is_update(taken):
                for (_, record_id), image in onto.items():
                    out.write(f"line {number}{_image_line(taken, record_id, image)}\n")
        else:
            decision = taken
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


class _Images:
    """The images a run has seen: read once from the store, then merged in memory."""

    def __init__(self, reader: ImageReader | None, out: TextIO) -> None:
        self._reader = reader
        self._out = out
        self._read: set[ImageKey] = set()
        self.book = ImageBook({})

    def before(self, keys: Sequence[ImageKey]) -> dict[ImageKey, Image | None]:
        """The images ``keys`` have now (read from the store the first time they are seen)."""
        if unread := [k for k in keys if k not in self._read]:
            found = self._reader(unread) if self._reader is not None else {}
            if found is None:
                self._out.write(
                    "record images: Redis does not answer; events are checked as if no record "
                    "had an image\n"
                )
                self._reader = None
                found = {}
            self._read.update(unread)
            for key in unread:
                if key not in self.book.changed:
                    self.book.put(key, found.get(key))
            self.book.changed.clear()  # nothing is ever written
        return {k: self.book.get(k) for k in keys}


def _is_update(taken: Imaging) -> bool:
    """Whether the event is a change that carries only changed fields (merged onto an image)."""
    changes = taken.mapping.changes
    if changes is None:
        return False
    change = changes.type.value(Context(taken.event.data, None))
    return isinstance(change, str) and change in changes.changed_only


def _image_line(taken: Imaging, record_id: str, image: Image | None) -> str:
    where = f" ({taken.event.event_id}): image of {taken.mapping.name} {record_id}"
    if image is None:
        return f"{where}: none"
    at = "" if image.order is None else f" at {list(image.order)}"
    return f"{where}{at}: " + orjson.dumps(image.fields, option=orjson.OPT_SORT_KEYS).decode()


def check_line(intake: Intake, line: str) -> list[str]:
    """The problems of one line, each as ``" (event_id): message"`` (id left out if unknown);
    a line that needs record images is checked as if its records had none."""
    taken = _take_in(intake, line)
    if isinstance(taken, Imaging):
        return problems_of(
            intake.finish(
                taken, build(taken.mapping, taken.event.data, ImageBook({}), intake.max_event_bytes)
            )
        )
    return problems_of(taken)


def explain_admitted(decision: Admitted) -> list[str]:
    """What would be sent for an admitted event: ``" (event_id): /endpoint <- {record}"``,
    one per Sage record (an event naming several CRM records makes several)."""
    return [
        f" ({part.event.event_id}): {part.route.endpoint} <- "
        + orjson.dumps(part.event.data).decode()
        for part in decision.parts or (decision,)
    ]


def _take_in(intake: Intake, line: str) -> Admitted | Refused | Imaging:
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
