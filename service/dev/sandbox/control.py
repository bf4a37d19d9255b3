"""The sandbox's ``/_sandbox`` endpoints: what tests and the demo read and change. They have
no authentication: they exist only where the sandbox runs for tests and demos."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.dev.sandbox.responses import error, json_response
from service.errors import FaultsError

if TYPE_CHECKING:
    from service.dev.sandbox.app import Sandbox


def control_routes(sandbox: Sandbox) -> list[Route]:
    def bound(
        handler: Callable[[Sandbox, Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        return functools.partial(handler, sandbox)

    return [
        Route("/_sandbox/stats", bound(stats), methods=["GET"]),
        Route("/_sandbox/records", bound(records), methods=["GET"]),
        Route("/_sandbox/calls", bound(calls), methods=["GET"]),
        Route("/_sandbox/reset", bound(reset), methods=["POST"]),
        Route("/_sandbox/faults", bound(get_faults), methods=["GET"]),
        Route("/_sandbox/faults", bound(set_faults), methods=["POST"]),
    ]


async def stats(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.store.stats())


async def records(sandbox: Sandbox, request: Request) -> Response:
    endpoint = request.query_params.get("endpoint")
    return json_response(200, {"records": sandbox.store.records_for(endpoint)})


async def calls(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, {"calls": sandbox.store.calls})


async def reset(sandbox: Sandbox, request: Request) -> Response:
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
            return json_response(400, error("sandbox: reset body is not valid JSON"))
        if not isinstance(options, dict) or not set(options) <= {"faults"}:
            return json_response(400, error('sandbox: reset body must be {} or {"faults": true}'))
        restore = options.get("faults") is True
    sandbox.store.reset()
    if restore:
        sandbox.faults = sandbox.initial_faults.copy()
    sandbox.release_hangs()
    return json_response(200, {"response": "SUCCESS", "faults": sandbox.faults.as_dict()})


async def get_faults(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.faults.as_dict())


async def set_faults(sandbox: Sandbox, request: Request) -> Response:
    """Change the named faults (all or nothing) and release hung requests."""
    try:
        changes = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return json_response(400, error("sandbox: faults body is not valid JSON"))
    if not isinstance(changes, dict):
        return json_response(400, error("sandbox: faults body must be a JSON object"))
    try:
        sandbox.faults.update(changes)
    except FaultsError as exc:
        return json_response(400, error(f"sandbox: {exc}"))
    sandbox.release_hangs()
    return json_response(200, sandbox.faults.as_dict())
