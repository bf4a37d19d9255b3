"""The sandbox's HTTP face: a Cloud Connector that checks what it is sent against the contracts.

It answers the way the seed documents the real Connector (``{"response":"SUCCESS"|"ERROR",...}``,
the four required headers) and adds what the real one cannot give a test: injected faults, a
record of exactly what was accepted, and a count of transactional calls that overlapped — the
ordering mistake the seed warns corrupts Sage's record numbering.

It is as harsh as the real thing where that decides correctness: a request runs to its end
after its client disconnected (and keeps its tenant occupied until then), fencing headers are
ignored unless ``check_fencing`` is on, and the ``store_then_fail`` fault answers 500/502/504
after the records were stored, as a proxy in front of the Connector can.

Order of handling a business call, chosen so each answer means one thing:

1. unknown endpoint → 404; ``down`` fault → 503 (nothing behind the Connector answers);
2. headers (401 token, 400 customer/company, 403 token bound elsewhere, 400 Content-Type) and
   the body's JSON shape (400) — the Connector's front door, before Sage is involved;
3. with ``check_fencing``, a stale fencing number → ERROR; a transactional call now counts as in
   progress (an overlap is a violation) until it ends at the server, whatever its client does;
4. latency, slow processing, hang, injected 500, injected ERROR envelope;
5. overlap → ERROR; contract and ``reject_marker`` checks → ERROR naming the first bad record;
6. SUCCESS: every record is stored (an array is all or nothing) — or, with ``store_then_fail``,
   stored and then answered 500/502/504.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.dev.sandbox.faults import Faults, FaultsError
from service.dev.sandbox.store import Store, Tenant
from service.intake.routes import Lane, load_route_table
from service.intake.routes import Route as SageRoute

if TYPE_CHECKING:
    from service.dev.sandbox.server import SandboxOptions

CallResponse = tuple[int, dict[str, Any] | bytes]
"""The HTTP response the sandbox gives one business call: (status, JSON body — or the raw
page of a proxy)."""

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _error(message: str) -> dict[str, Any]:
    return {"response": "ERROR", "message": message}


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a configured token may do. ``label`` stands in for the token wherever it is shown."""

    token: str
    label: str
    tenant: Tenant | None
    """``None``: any customer/company; else only this one (``TOKEN=CUSTOMER/COMPANY``)."""


def parse_token_specs(specs: tuple[str, ...]) -> list[TokenGrant]:
    """``"TOKEN"`` or ``"TOKEN=CUSTOMER/COMPANY"`` per spec; labels are ``token#1``, ``token#2``...

    The split is on the *last* ``=`` and only when a ``/`` follows, so base64 tokens ending in
    ``=`` padding are read as plain tokens.
    """
    grants: list[TokenGrant] = []
    for number, spec in enumerate(specs, start=1):
        token, tenant = spec, None
        head, sep, tail = spec.rpartition("=")
        customer, slash, company = tail.partition("/")
        if sep and head and slash and customer and company:
            token, tenant = head, (customer, company)
        if not token:
            raise ValueError(f"sandbox: token #{number} is empty")
        grants.append(TokenGrant(token=token, label=f"token#{number}", tenant=tenant))
    return grants


@dataclass(slots=True)
class _Call:
    """What is known about one business call so far; becomes its call-log entry."""

    number: int
    endpoint: str
    customer: str
    company: str
    token: str | None = None
    """The token's label, never the token."""
    records: int = 0
    array: bool = False
    lookup: bool = False
    """A read (``GET``): counted under ``lookups``, not as a call that could write."""

    def log_entry(self, status: int, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        if isinstance(payload, bytes):  # a proxy's page: no envelope
            payload = {"response": "ERROR", "message": payload.decode(errors="replace")}
        return {
            "call": self.number,
            "endpoint": self.endpoint,
            "customer": self.customer,
            "company": self.company,
            "records": self.records,
            "array": self.array,
            "token": self.token,
            "outcome": payload.get("response", "ERROR"),
            "status": status,
            "message": payload.get("message"),
        }


class Sandbox:
    """State and handlers of one sandbox app; every handler runs on the server's event loop."""

    def __init__(self, options: SandboxOptions) -> None:
        table = load_route_table(options.contracts_dir)
        self.routes: dict[str, SageRoute] = {r.endpoint: r for r in table.routes.values()}
        self.grants = parse_token_specs(options.tokens)
        self.initial_faults = Faults()
        # Through update(), so a bad flag fails at start-up with the same message as the API.
        self.initial_faults.update(
            {
                "latency_ms": options.latency_ms,
                "fail_rate": options.fail_rate,
                "error_rate": options.error_rate,
                "hang_rate": options.hang_rate,
                "slow_rate": options.slow_rate,
                "slow_ms": options.slow_ms,
                "store_then_fail_rate": options.store_then_fail_rate,
                "store_then_fail_status": options.store_then_fail_status,
                "check_fencing": options.check_fencing,
            }
        )
        self.faults = self.initial_faults.copy()
        self.store = Store()
        self.rng = random.Random(options.seed)
        self._release = asyncio.Event()

    # -- faults -----------------------------------------------------------------------------

    def release_hangs(self) -> None:
        """Wake every hung request (they answer 503); later hangs wait on a fresh event."""
        self._release.set()
        self._release = asyncio.Event()

    def _roll(self, rate: float) -> bool:
        return rate > 0 and (rate >= 1 or self.rng.random() < rate)

    async def _hang(self) -> None:
        """Wait until released or ``hang_s`` passes. A client that gives up changes nothing: a
        real server does not notice, and the call keeps occupying its tenant meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.faults.hang_s)

    # -- business calls ---------------------------------------------------------------------

    async def business(self, request: Request) -> Response:
        """Any non-``/_sandbox`` path: one Cloud Connector call, logged once it is answered."""
        generation = self.store.generation
        call = _Call(
            number=self.store.next_call(),
            endpoint=request.url.path,
            customer=request.headers.get("customer", ""),
            company=request.headers.get("company", ""),
        )
        self.store.calls_in_progress += 1
        try:
            status, payload = await self._respond(request, call, generation)
        finally:
            self.store.calls_in_progress -= 1
        if self.store.generation == generation:
            if call.lookup:
                self.store.lookups += 1
            else:
                self.store.log_call(call.log_entry(status, payload))
            if await request.is_disconnected():
                self.store.abandoned += 1  # finished for nobody: its client had given up
        if isinstance(payload, bytes):
            return Response(payload, status_code=status, media_type="text/html")
        return _json(status, payload)

    async def _respond(self, request: Request, call: _Call, generation: int) -> CallResponse:
        route = self.routes.get(call.endpoint)
        if route is None:
            return 404, _error(f"sandbox: no endpoint {call.endpoint}")
        if request.method == "GET" and route.lane is not Lane.SERIAL:
            return self._lookup(request, call, route)
        if request.method != "POST":
            return 405, _error(f"sandbox: {request.method} {call.endpoint} is not supported")
        if self.faults.down:
            self.store.injected["down"] += 1
            return 503, _error("sandbox: Sage server unreachable (down)")
        refused = self._check_headers(request, call)
        if refused is not None:
            return refused
        parsed = _parse_body(await request.body())
        if isinstance(parsed, str):
            return 400, _error(parsed)
        records, call.array = parsed
        call.records = len(records)
        if route.lane is not Lane.SERIAL:
            return await self._process(
                request, call, route=route, records=records, violation=False, generation=generation
            )
        tenant = (call.customer, call.company)
        fence_header = request.headers.get("x-fencing-token")
        fence = int(fence_header) if fence_header and fence_header.isdigit() else None
        if not self.store.check_fence(tenant, fence) and self.faults.check_fencing:
            return 200, _error("sandbox: stale fencing token (a newer lock holder exists)")
        violation = self.store.enter_transactional(tenant)
        try:
            return await self._process(
                request,
                call,
                route=route,
                records=records,
                violation=violation,
                generation=generation,
            )
        finally:
            self.store.leave_transactional(tenant)

    def _lookup(self, request: Request, call: _Call, route: SageRoute) -> CallResponse:
        """``GET <endpoint>?<key>=<value>...``: the current rows matching the key elements.
        Parameter names match element names case-insensitively (the Connector's documentation
        writes ``customerNo`` for ``CustomerNo``). Not counted as a business call in stats."""
        refused = self._check_headers(request, call, needs_body=False)
        if refused is not None:
            return refused
        elements = {
            name.lower(): name for name in (route.contract.elements if route.contract else ())
        }
        criteria: dict[str, str] = {}
        for param, value in request.query_params.items():
            name = elements.get(param.lower())
            if name is None:
                return 400, _error(f"sandbox: {param} is not an element of {call.endpoint}")
            criteria[name] = value
        if not criteria:
            return 400, _error("sandbox: a lookup needs key parameters")
        call.lookup = True
        rows = self.store.lookup(call.endpoint, (call.customer, call.company), criteria)
        return 200, {"response": "SUCCESS", "records": rows}

    def _check_headers(
        self, request: Request, call: _Call, needs_body: bool = True
    ) -> CallResponse | None:
        """The Connector's front door; messages never contain the token itself."""
        grant = self._grant(request.headers.get("auth-token", ""))
        if grant is None:
            return 401, _error("sandbox: missing or unknown Auth-Token")
        call.token = grant.label
        for name, value in (("customer", call.customer), ("company", call.company)):
            if not value:
                return 400, _error(f"sandbox: missing header: {name}")
        if grant.tenant is not None and grant.tenant != (call.customer, call.company):
            bound_customer, bound_company = grant.tenant
            return 403, _error(
                f"sandbox: Auth-Token {grant.label} is bound to customer {bound_customer} "
                f"company {bound_company}, not customer {call.customer} company {call.company}"
            )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if needs_body and media_type != "application/json":
            return 400, _error("sandbox: Content-Type must be application/json")
        return None

    def _grant(self, token: str) -> TokenGrant | None:
        found = None
        for grant in self.grants:  # compare against all, in constant time per token
            if hmac.compare_digest(grant.token.encode(), token.encode()) and found is None:
                found = grant
        return found

    async def _process(
        self,
        request: Request,
        call: _Call,
        *,
        route: SageRoute,
        records: list[dict[str, Any]],
        violation: bool,
        generation: int,
    ) -> CallResponse:
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if self._roll(self.faults.slow_rate):
            self.store.injected["slow"] += 1
            await asyncio.sleep(self.faults.slow_ms / 1000)
        if self._roll(self.faults.hang_rate):
            self.store.injected["hang"] += 1
            await self._hang()
            return 503, _error("sandbox: hung request released")
        if self._roll(self.faults.fail_rate):
            self.store.injected["fail"] += 1
            return 500, _error("sandbox: injected server error")
        if self._roll(self.faults.error_rate):
            self.store.injected["error"] += 1
            return 200, _error("sandbox: injected ERROR envelope")
        if violation:
            return 200, _error("sandbox: concurrent call to a transactional endpoint")
        bad = self._first_bad_record(route, records)
        if bad is not None:
            self.store.rejected_records += 1
            return 200, _error(bad)
        if self.store.generation != generation:
            return 503, _error("sandbox: reset while the call was in progress")
        numbered = route.lane is Lane.SERIAL
        keys = route.contract.keys if route.contract is not None else ()
        numbers = self.store.accept(
            call.endpoint, (call.customer, call.company), call.number, records, numbered, keys
        )
        if self._roll(self.faults.store_then_fail_rate):
            self.store.injected["store_then_fail"] += 1
            return _failure_after_storing(self.faults.store_then_fail_status)
        answer: dict[str, Any] = {"response": "SUCCESS", "records": len(records)}
        if numbered:
            answer["record_numbers"] = numbers
        return 200, answer

    def _first_bad_record(self, route: SageRoute, records: list[dict[str, Any]]) -> str | None:
        """``record {index}: {problem}`` for the first refused record, or ``None``."""
        contract, marker = route.contract, self.faults.reject_marker
        for index, record in enumerate(records):
            if contract is not None:
                errors = contract.check(record)
                if errors:
                    return f"record {index}: {errors[0].describe()}"
            if marker is not None:
                for name, value in record.items():
                    if isinstance(value, str) and value == marker:
                        return f"record {index}: {name}: rejected by Sage"
        return None

    # -- /_sandbox control endpoints (no auth: they exist only for tests and demos) ---------

    async def stats(self, request: Request) -> Response:
        return _json(200, self.store.stats())

    async def records(self, request: Request) -> Response:
        endpoint = request.query_params.get("endpoint")
        return _json(200, {"records": self.store.records_for(endpoint)})

    async def calls(self, request: Request) -> Response:
        return _json(200, {"calls": self.store.calls})

    async def reset(self, request: Request) -> Response:
        """Forget records, call log, counters and record numbers; release hung requests.

        Faults are *kept*, so a test can set faults once and reset between phases; send
        ``{"faults": true}`` to also restore the faults the sandbox was started with.
        """
        body = await request.body()
        restore = False
        if body.strip():
            try:
                options = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _json(400, _error("sandbox: reset body is not valid JSON"))
            if not isinstance(options, dict) or not set(options) <= {"faults"}:
                return _json(400, _error('sandbox: reset body must be {} or {"faults": true}'))
            restore = options.get("faults") is True
        self.store.reset()
        if restore:
            self.faults = self.initial_faults.copy()
        self.release_hangs()
        return _json(200, {"response": "SUCCESS", "faults": self.faults.as_dict()})

    async def get_faults(self, request: Request) -> Response:
        return _json(200, self.faults.as_dict())

    async def set_faults(self, request: Request) -> Response:
        """Change the named faults (all or nothing) and release hung requests."""
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json(400, _error("sandbox: faults body is not valid JSON"))
        if not isinstance(changes, dict):
            return _json(400, _error("sandbox: faults body must be a JSON object"))
        try:
            self.faults.update(changes)
        except FaultsError as exc:
            return _json(400, _error(f"sandbox: {exc}"))
        self.release_hangs()
        return _json(200, self.faults.as_dict())


_PROXY_PAGES = {
    502: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    504: b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _failure_after_storing(status: int) -> CallResponse:
    """What the client sees when the records were stored but the answer was lost: the
    Connector's own 500, or a proxy's 502/504 page (no envelope)."""
    if status == 500:
        return 500, _error("sandbox: server error after the records were stored")
    return status, _PROXY_PAGES[status]


def _parse_body(raw: bytes) -> tuple[list[dict[str, Any]], bool] | str:
    """(records, was an array), or the reason the body is not one object or array of objects."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "sandbox: body is not valid JSON"
    if isinstance(body, dict):
        return [body], False
    if not isinstance(body, list):
        return "sandbox: body must be a JSON object or an array of objects"
    if not body:
        return "sandbox: empty array: nothing to process"
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            return f"sandbox: array item {index} is not a JSON object"
    return body, True


def build_app(options: SandboxOptions) -> Starlette:
    """A Starlette app emulating the Connector; ``app.state.sandbox`` is its :class:`Sandbox`."""
    sandbox = Sandbox(options)
    app = Starlette(
        routes=[
            Route("/_sandbox/stats", sandbox.stats, methods=["GET"]),
            Route("/_sandbox/records", sandbox.records, methods=["GET"]),
            Route("/_sandbox/calls", sandbox.calls, methods=["GET"]),
            Route("/_sandbox/reset", sandbox.reset, methods=["POST"]),
            Route("/_sandbox/faults", sandbox.get_faults, methods=["GET"]),
            Route("/_sandbox/faults", sandbox.set_faults, methods=["POST"]),
            Route("/{path:path}", sandbox.business, methods=_ALL_METHODS),
        ]
    )
    app.state.sandbox = sandbox
    return app
