"""The shapes of the sandbox's answers: the Connector's envelope, as JSON responses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

CallResponse = tuple[int, dict[str, Any] | bytes]
"""The HTTP response the sandbox gives one business call: (status, JSON body — or the raw
page of a proxy)."""


def error(message: str) -> dict[str, Any]:
    """The Connector's ERROR envelope."""
    return {"response": "ERROR", "message": message}


def json_response(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
