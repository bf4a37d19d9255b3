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

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from service.dev.sandbox.faults import Faults
from service.dev.sandbox.responses import CallResponse, error, json_response
from service.dev.sandbox.store import Store
from service.dev.sandbox.tokens import FrontDoor, parse_token_specs
from service.intake.routes import Lane, load_route_table
from service.intake.routes import Route as SageRoute
from service.tenants import TenantKey

if TYPE_CHECKING:
    from service.dev.sandbox.options import SandboxOptions

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def wait_left(received_s: float, latency_ms: int, now_s: float | None = None) -> float:
    """Seconds still to wait so that a call answers ``latency_ms`` after it arrived: the
    latency is the Connector's whole time for a call, its own handling included, as the
    benchmark's ideal (1/latency calls a second) assumes; sleeping the full latency after
    reading the request would add the sandbox's handling to every call."""
    now = time.monotonic() if now_s is None else now_s
    return max(0.0, received_s + latency_ms / 1000 - now)


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
    received_s: float = field(default_factory=time.monotonic)
    """When the request arrived, on this machine's monotonic clock: tests measure the gaps
    between calls (a ``Retry-After`` obeyed) from the server's side, without sleeping."""
    reply_headers: dict[str, str] = field(default_factory=dict)

    @property
    def tenant(self) -> TenantKey:
        return TenantKey(self.customer, self.company)

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
            "received_s": self.received_s,
        }


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
            media = "text/html" if payload.startswith(b"<") else "text/plain"
            return Response(
                payload, status_code=status, media_type=media, headers=call.reply_headers
            )
        response = json_response(status, payload)
        response.headers.update(call.reply_headers)
        return response

    async def _respond(self, request: Request, call: _Call, generation: int) -> CallResponse:
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
        if request.method == "GET" and route.lane is not Lane.SERIAL:
            return self._lookup(request, call, route)
        if request.method != "POST":
            return 405, error(f"sandbox: {request.method} {call.endpoint} is not supported")
        if self.faults.down:
            self.store.injected["down"] += 1
            return 503, error("sandbox: Sage server unreachable (down)")
        call.token, refused = self.front_door.check(request, call.customer, call.company)
        if refused is not None:
            return refused
        parsed = _parse_body(await request.body())
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

    def _lookup(self, request: Request, call: _Call, route: SageRoute) -> CallResponse:
        """``GET <endpoint>?<key>=<value>...``: the current rows matching the key elements.
        Parameter names match element names case-insensitively (the Connector's documentation
        writes ``customerNo`` for ``CustomerNo``). Not counted as a business call in stats."""
        call.token, refused = self.front_door.check(
            request, call.customer, call.company, needs_body=False
        )
        if refused is not None:
            return refused
        elements = {
            name.lower(): name for name in (route.contract.elements if route.contract else ())
        }
        criteria: dict[str, str] = {}
        for param, value in request.query_params.items():
            name = elements.get(param.lower())
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
        call: _Call,
        *,
        route: SageRoute,
        records: list[dict[str, Any]],
        violation: bool,
        generation: int,
    ) -> CallResponse:
        if self.faults.latency_ms:
            await asyncio.sleep(wait_left(call.received_s, self.faults.latency_ms))
        if self._roll(self.faults.slow_rate):
            self.store.injected["slow"] += 1
            await asyncio.sleep(self.faults.slow_ms / 1000)
        if self._roll(self.faults.hang_rate):
            self.store.injected["hang"] += 1
            await self._hang()
            return 503, error("sandbox: hung request released")
        if self._roll(self.faults.fail_rate):
            self.store.injected["fail"] += 1
            return 500, error("sandbox: injected server error")
        if self._roll(self.faults.error_rate):
            self.store.injected["error"] += 1
            return 200, error("sandbox: injected ERROR envelope")
        if violation:
            return 200, error("sandbox: concurrent call to a transactional endpoint")
        numbered = route.lane is Lane.SERIAL
        keys = route.contract.keys if route.contract is not None else ()
        bad = self._first_bad_record(route, records)
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
        if self._roll(self.faults.store_then_fail_rate):
            self.store.injected["store_then_fail"] += 1
            return _failure_after_storing(self.faults.store_then_fail_status)
        answer: dict[str, Any] = {"response": "SUCCESS", "records": len(records)}
        if numbered:
            answer["record_numbers"] = numbers
        return 200, answer

    def _first_bad_record(
        self, route: SageRoute, records: list[dict[str, Any]]
    ) -> tuple[int, str] | None:
        """The first refused record's index and ``record {index}: {problem}``, or ``None``."""
        contract, marker = route.contract, self.faults.reject_marker
        for index, record in enumerate(records):
            if contract is not None:
                errors = contract.check(record)
                if errors:
                    return index, f"record {index}: {errors[0].describe()}"
            if marker is not None:
                for name, value in record.items():
                    if isinstance(value, str) and value == marker:
                        return index, f"record {index}: {name}: rejected by Sage"
        return None


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
