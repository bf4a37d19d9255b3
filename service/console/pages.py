"""The console's pages and actions: each reads through :class:`~service.console.sources.Sources`
and answers with a template; each action checks its form, acts, and writes the audit record.

An action's audit record is written after the action and names its result, so the audit topic
says what happened, not what was attempted; an action whose record could not be written is
reported as such on the page (the action itself stands).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from service.console.audit import Action, action
from service.console.forms import MAX_FILTER, BadInput, letter_query, tenant, text
from service.console.guard import checked_form
from service.console.render import Pages
from service.console.sources import Sources
from service.errors import ToolError, VerdictRefused
from service.tools.dead_letters import iso

DAY = timedelta(hours=24)


class Console:
    """The handlers; routes are declared in :mod:`service.console.app`."""

    def __init__(self, pages: Pages, sources: Sources, max_letters: int) -> None:
        self._pages = pages
        self._sources = sources
        self._max_letters = max_letters

    def _page(
        self, request: Request, template: str, status: int = 200, **context: object
    ) -> Response:
        return self._pages.page(
            request, template, status, iso=iso, max_filter=MAX_FILTER, **context
        )

    async def overview(self, request: Request) -> Response:
        paused = await self._sources.tenants.paused()
        unknown = Counter(str(d.intent.tenant) for d in await self._sources.ledger.in_doubt())
        stages = await self._sources.letters.by_stage(DAY)
        backlog = await self._sources.tenants.backlog()
        replicas, open_ = await self._sources.tenants.breakers()
        breakers = {str(t): b for t, b in open_.items()}
        known = {str(t) for t in self._sources.tenants.known}
        names = known | set(stages) | set(unknown) | set(breakers)
        by_name = {str(t): since for t, since in paused.items()}
        rows = [
            {
                "tenant": name,
                "configured": name in known,
                "paused": by_name.get(name),
                "breaker": breakers.get(name),
                "unknown": unknown.get(name, 0),
                "stages": sorted(stages.get(name, Counter()).items()),
            }
            for name in sorted(names)
        ]
        return self._page(request, "overview.html", rows=rows, backlog=backlog, replicas=replicas)

    async def letters(self, request: Request) -> Response:
        query = letter_query(request.query_params)
        listing = await self._sources.letters.listing(query.chosen, self._max_letters)
        total = sum(listing.stages.values())
        return self._page(request, "letters.html", form=query.typed, listing=listing, total=total)

    async def letter(self, request: Request) -> Response:
        partition, offset = request.path_params["partition"], request.path_params["offset"]
        found = await self._sources.letters.find(partition, offset)
        if found is None:
            return self._pages.problem(
                request,
                404,
                "No such dead letter",
                f"Nothing at partition {partition}, offset {offset}.",
            )
        replies = await self._sources.history.replies(found.event_id) if found.event_id else []
        return self._page(request, "letter.html", letter=found, replies=replies)

    async def replay(self, request: Request) -> Response:
        form = await checked_form(request)
        query = letter_query(form)
        count, ids = await self._sources.letters.replay(query.chosen)
        described = ", ".join(f"{k}={v}" for k, v in query.typed.items() if v) or "all letters"
        done = action(
            request.state.user,
            "replay",
            event_ids=ids,
            tenant=query.typed["tenant"] or None,
            reason=text(form, "reason"),
            result=f"replayed {count} dead letter(s) ({described})",
        )
        return await self._done(
            request, done, f"Replayed {count} dead letter(s).", [("Dead letters", "/letters")]
        )

    async def in_doubt(self, request: Request, status: int = 200, refused: str = "") -> Response:
        doubts = await self._sources.ledger.in_doubt()
        return self._page(request, "in_doubt.html", status, doubts=doubts, refused=refused)

    async def resolve(self, request: Request) -> Response:
        form = await checked_form(request)
        event_id = text(form, "event_id", required=True)
        who = tenant(form)
        verdict = text(form, "verdict")
        if verdict not in ("delivered", "not_delivered"):
            raise BadInput("verdict must be delivered or not_delivered")
        try:
            said = await self._sources.ledger.resolve(
                event_id, who, delivered=verdict == "delivered"
            )
        except VerdictRefused as exc:
            return await self.in_doubt(request, 409, refused=_refusal(event_id, verdict, exc))
        done = action(
            request.state.user,
            f"resolve_{verdict}",
            event_ids=(event_id,),
            tenant=str(who),
            reason=text(form, "reason"),
            result=said,
        )
        links = [("In doubt", "/in-doubt"), ("Its history", f"/events?event_id={event_id}")]
        return await self._done(request, done, said, links)

    async def history(self, request: Request) -> Response:
        event_id = text(request.query_params, "event_id")
        if not event_id:
            return self._page(request, "history.html", event_id="", history=None)
        history = await self._sources.history.of(event_id)
        if not history.known:
            return self._pages.problem(
                request,
                404,
                "Unknown event",
                f"Nothing is known of event_id {event_id!r}: it is not on the input, reply "
                "or dead-letter topics, not in the ledger, and no operator acted on it.",
            )
        return self._page(request, "history.html", event_id=event_id, history=history)

    async def tenants(self, request: Request) -> Response:
        paused = await self._sources.tenants.paused()
        last: dict[str, Action] = {}
        for done in await self._sources.audit.actions():
            if done.what in ("pause", "resume") and done.tenant:
                last[done.tenant] = done
        rows = [
            {"tenant": str(t), "paused": paused.get(t), "last": last.get(str(t))}
            for t in self._sources.tenants.known
        ]
        return self._page(request, "tenants.html", rows=rows)

    async def pause(self, request: Request) -> Response:
        form = await checked_form(request)
        who = tenant(form)
        if who not in self._sources.tenants.known:
            raise BadInput(f"{who} is not a configured tenant")
        if request.path_params["action"] not in ("pause", "resume"):
            raise BadInput("the action is pause or resume")
        pausing = request.path_params["action"] == "pause"
        changed = await self._sources.tenants.pause(who, pause=pausing)
        if pausing:
            said = (
                f"Paused {who}: no replica calls it until it is resumed."
                if changed
                else f"{who} was already paused."
            )
        else:
            said = (
                f"Resumed {who}: its waiting records flow again."
                if changed
                else f"{who} was not paused."
            )
        done = action(
            request.state.user,
            "pause" if pausing else "resume",
            tenant=str(who),
            reason=text(form, "reason", required=True),
            result=said,
        )
        return await self._done(request, done, said, [("Tenants", "/tenants")])

    async def _done(
        self, request: Request, done: Action, said: str, links: list[tuple[str, str]]
    ) -> Response:
        try:
            await self._sources.audit.record(done)
        except ToolError as exc:
            return self._pages.problem(
                request,
                503,
                "Done, but not recorded",
                f"{said} The audit record was not written: {exc}",
            )
        return self._page(request, "done.html", title="Done", detail=said, links=links)


def _refusal(event_id: str, verdict: str, exc: VerdictRefused) -> str:
    """Why a verdict was not recorded, in the page's words (the command's names its flags)."""
    if exc.accepted_from is not None:
        return (
            f"“Not delivered” was not recorded for {event_id}: its last call may still be "
            "stored in Sage, because the Cloud Connector finishes a call after sagebridge "
            f"stopped waiting for it. It is accepted from {iso(exc.accepted_from)}: look in "
            "Sage again then."
        )
    said = str(exc).removeprefix("ledger resolve: ")
    return f"“{verdict.replace('_', ' ').capitalize()}” was not recorded: {said}."
