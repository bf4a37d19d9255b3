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

0. the ``gateway_401`` fault: a gateway in front of the Connector refuses the call (plain 401);
1. unknown endpoint → 404; ``throttle_count`` → 429/503 with ``Retry-After``; ``down`` fault
   → 503 (nothing behind the Connector answers);
2. headers (401 token, 400 customer/company, 403 token bound elsewhere, 400 Content-Type) and
   the body's JSON shape (400) — the Connector's front door, before Sage is involved;
3. with ``check_fencing``, a stale fencing number → ERROR; a transactional call now counts as in
   progress (an overlap is a violation) until it ends at the server, whatever its client does;
4. latency, slow processing, hang, injected 500, injected ERROR envelope;
5. overlap → ERROR; contract and ``reject_marker`` checks → ERROR naming the first bad record;
6. SUCCESS: every record is stored (an array is all or nothing, unless ``partial_arrays`` is on:
   then a refused array keeps the records before the bad one) — or, with ``store_then_fail``,
   stored and then answered 500/502/504.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from service.dev.sandbox.calls import Call, first_bad_record, parse_body
from service.dev.sandbox.faults import Faults
from service.dev.sandbox.injection import Injector
from service.dev.sandbox.responses import CallResponse, error, json_response
from service.dev.sandbox.store import Store
from service.dev.sandbox.tokens import FrontDoor, parse_token_specs
from service.intake.routes import Lane, load_route_table
from service.intake.routes import Route as SageRoute

if TYPE_CHECKING:
    from service.dev.sandbox.options import SandboxOptions

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def initial_faults(options: SandboxOptions) -> Faults:
    """The faults asked for at start-up; through ``update()``, so a bad flag fails at start-up
    with the same message as the API."""
    faults = Faults()
    faults.update(
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
    return faults


class Sandbox:
    """State and handlers of one sandbox app; every handler runs on the server's event loop."""

    def __init__(self, options: SandboxOptions) -> None:
        table = load_route_table(options.contracts_dir)
        self.routes: dict[str, SageRoute] = {r.endpoint: r for r in table.routes.values()}
        self.front_door = FrontDoor(parse_token_specs(options.tokens))
        self.initial_faults = initial_faults(options)
        self.faults = self.initial_faults.copy()
        self.store = Store()
        self.injector = Injector(options.seed)

    def release_hangs(self) -> None:
        """Wake every hung request (they answer 503)."""
        self.injector.release_hangs()

    # -- business calls ---------------------------------------------------------------------

    async def business(self, request: Request) -> Response:
        """Any non-``/_sandbox`` path: one Cloud Connector call, logged once it is answered."""
        generation = self.store.generation
        call = Call(
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
            media = "text/html" if payload.startswith(b"<") else "text/plain"
            return Response(
                payload, status_code=status, media_type=media, headers=call.reply_headers
            )
        response = json_response(status, payload)
        response.headers.update(call.reply_headers)
        return response

    async def _respond(self, request: Request, call: Call, generation: int) -> CallResponse:
        if self.faults.gateway_401 > 0:
            self.faults.gateway_401 -= 1
            self.store.injected["gateway_401"] += 1
            return 401, b"401 Unauthorized: token rejected by the gateway"
        route = self.routes.get(call.endpoint)
        if route is None:
            return 404, error(f"sandbox: no endpoint {call.endpoint}")
        if self.faults.throttle_count > 0:
            self.faults.throttle_count -= 1
            self.store.injected["throttle"] += 1
            if self.faults.retry_after is not None:
                call.reply_headers["Retry-After"] = self.faults.retry_after
            return self.faults.throttle_status, error("sandbox: throttled, try later")
        if request.method == "GET":
            return self._lookup(request, call, route)
        if request.method != "POST":
            return 405, error(f"sandbox: {request.method} {call.endpoint} is not supported")
        if self.faults.down:
            self.store.injected["down"] += 1
            return 503, error("sandbox: Sage server unreachable (down)")
        call.token, refused = self.front_door.check(request, call.customer, call.company)
        if refused is not None:
            return refused
        parsed = parse_body(await request.body())
        if isinstance(parsed, str):
            return 400, error(parsed)
        records, call.array = parsed
        call.records = len(records)
        if route.lane is not Lane.SERIAL:
            return await self._process(
                request, call, route=route, records=records, violation=False, generation=generation
            )
        tenant = call.tenant
        fence_header = request.headers.get("x-fencing-token")
        fence = int(fence_header) if fence_header and fence_header.isdigit() else None
        if not self.store.check_fence(tenant, fence) and self.faults.check_fencing:
            return 200, error("sandbox: stale fencing token (a newer lock holder exists)")
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

    def _lookup(self, request: Request, call: Call, route: SageRoute) -> CallResponse:
        """``GET <endpoint>?<key>=<value>...``: the current rows matching the key elements.
        Parameter names match element names case-insensitively (the Connector's documentation
        writes ``customerNo`` for ``CustomerNo``). Not counted as a business call in stats.

        Transactional endpoints list their records too (how a record in doubt is looked up): a
        read, so it neither waits for nor counts as the company's one call at a time. Without a
        contract, the elements are the fields of the records stored there."""
        call.token, refused = self.front_door.check(
            request, call.customer, call.company, needs_body=False
        )
        if refused is not None:
            return refused
        if route.contract is not None:
            names: Iterable[str] = route.contract.elements
        else:
            names = self.store.field_names(call.endpoint, call.tenant)
        elements = {name.lower(): name for name in names}
        criteria: dict[str, str] = {}
        for param, value in request.query_params.items():
            name = elements.get(param.lower(), param if route.contract is None else None)
            if name is None:
                return 400, error(f"sandbox: {param} is not an element of {call.endpoint}")
            criteria[name] = value
        if not criteria:
            return 400, error("sandbox: a lookup needs key parameters")
        call.lookup = True
        rows = self.store.lookup(call.endpoint, call.tenant, criteria)
        return 200, {"response": "SUCCESS", "records": rows}

    async def _process(
        self,
        request: Request,
        call: Call,
        *,
        route: SageRoute,
        records: list[dict[str, Any]],
        violation: bool,
        generation: int,
    ) -> CallResponse:
        injected = await self.injector.before_sage(
            self.faults, self.store.injected, call.received_s
        )
        if injected is not None:
            return injected
        if violation:
            return 200, error("sandbox: concurrent call to a transactional endpoint")
        numbered = route.lane is Lane.SERIAL
        keys = route.contract.keys if route.contract is not None else ()
        bad = first_bad_record(route, records, self.faults.reject_marker)
        if bad is not None:
            index, problem = bad
            self.store.rejected_records += 1
            if self.faults.partial_arrays and index and self.store.generation == generation:
                self.store.accept(
                    call.endpoint, call.tenant, call.number, records[:index], numbered, keys
                )
            return self.faults.refusal_status, error(problem)
        if self.store.generation != generation:
            return 503, error("sandbox: reset while the call was in progress")
        numbers = self.store.accept(
            call.endpoint, call.tenant, call.number, records, numbered, keys
        )
        if self.injector.roll(self.faults.store_then_fail_rate):
            self.store.injected["store_then_fail"] += 1
            return _failure_after_storing(self.faults.store_then_fail_status)
        answer: dict[str, Any] = {"response": "SUCCESS", "records": len(records)}
        if numbered:
            answer["record_numbers"] = numbers
        return 200, answer


_PROXY_PAGES = {
    502: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    504: b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
}


def _failure_after_storing(status: int) -> CallResponse:
    """What the client sees when the records were stored but the answer was lost: the
    Connector's own 500, or a proxy's 502/504 page (no envelope)."""
    if status == 500:
        return 500, error("sandbox: server error after the records were stored")
    return status, _PROXY_PAGES[status]
