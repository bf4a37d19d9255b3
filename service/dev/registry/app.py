"""The development Schema Registry: Confluent's REST API, the part serializers and readers use.

Endpoints and answer shapes follow Confluent's Schema Registry API reference:

- ``POST /subjects/{subject}/versions`` ``{"schema", "schemaType"?, "references"?}`` ->
  ``{"id"}``: registers (an identical schema keeps its id, as the real registry does);
- ``POST /subjects/{subject}`` -> the registered version of that schema (40403 if none);
- ``GET /schemas/ids/{id}`` -> ``{"schema", "schemaType"?}`` (``schemaType`` left out for
  Avro), or 404 ``{"error_code": 40403}``;
- ``GET /subjects``, ``GET /subjects/{subject}/versions``,
  ``GET /subjects/{subject}/versions/{version|latest}``;
- ``GET /schemas/types``.

For tests, ``POST /_registry/outage`` ``{"down": true|false}`` makes every other endpoint
answer HTTP 503 (a registry that is down), and ``GET /_registry/requests`` counts the
``GET /schemas/ids`` requests received, refused ones included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_NOT_FOUND, SUBJECT_NOT_FOUND, VERSION_NOT_FOUND = 40403, 40401, 40402


@dataclass
class Store:
    """Schemas by id (from 1) and each subject's versions (schema ids, in order)."""

    schemas: list[tuple[str, str]] = field(default_factory=list)
    subjects: dict[str, list[int]] = field(default_factory=dict)
    down: bool = False
    id_requests: int = 0

    def register(self, subject: str, text: str, kind: str) -> int:
        try:
            schema_id = self.schemas.index((text, kind)) + 1
        except ValueError:
            self.schemas.append((text, kind))
            schema_id = len(self.schemas)
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    def shown(self, schema_id: int, subject: str | None = None) -> dict[str, Any]:
        text, kind = self.schemas[schema_id - 1]
        body: dict[str, Any] = {"id": schema_id, "schema": text}
        if kind != "AVRO":
            body["schemaType"] = kind
        if subject is not None:
            body["subject"] = subject
            body["version"] = self.subjects[subject].index(schema_id) + 1
        return body


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> Response:
    return _json({"error_code": code, "message": message}, status)


def build_app() -> Starlette:
    store = Store()

    def available(handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            if request.url.path.startswith("/schemas/ids/"):
                store.id_requests += 1  # answered or not: a test sees the reader ask again
            if store.down:
                return _error(503, 50003, "the registry is down (development outage)")
            response: Response = await handler(request)
            return response

        return guarded

    async def schema_by_id(request: Request) -> Response:
        schema_id = int(request.path_params["id"])
        if not 0 < schema_id <= len(store.schemas):
            return _error(404, SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
        body = store.shown(schema_id)
        del body["id"]
        return _json(body)

    async def register(request: Request) -> Response:
        body = orjson.loads(await request.body())
        schema_id = store.register(
            request.path_params["subject"], body["schema"], body.get("schemaType") or "AVRO"
        )
        return _json({"id": schema_id})

    async def lookup(request: Request) -> Response:
        body = orjson.loads(await request.body())
        subject = request.path_params["subject"]
        key = (body["schema"], body.get("schemaType") or "AVRO")
        if subject not in store.subjects:
            return _error(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
        if key not in store.schemas or store.schemas.index(key) + 1 not in store.subjects[subject]:
            return _error(404, SCHEMA_NOT_FOUND, "Schema not found")
        return _json(store.shown(store.schemas.index(key) + 1, subject))

    async def subjects(request: Request) -> Response:
        return _json(sorted(store.subjects))

    async def versions(request: Request) -> Response:
        subject = request.path_params["subject"]
        if subject not in store.subjects:
            return _error(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
        return _json(list(range(1, len(store.subjects[subject]) + 1)))

    async def version(request: Request) -> Response:
        subject, wanted = request.path_params["subject"], request.path_params["version"]
        if subject not in store.subjects:
            return _error(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
        ids = store.subjects[subject]
        index = len(ids) if wanted in ("latest", "-1") else int(wanted)
        if not 0 < index <= len(ids):
            return _error(404, VERSION_NOT_FOUND, f"Version {wanted} not found")
        return _json(store.shown(ids[index - 1], subject))

    async def types(request: Request) -> Response:
        return _json(["AVRO", "JSON", "PROTOBUF"])

    async def outage(request: Request) -> Response:
        store.down = bool(orjson.loads(await request.body()).get("down"))
        return _json({"down": store.down})

    async def requests(request: Request) -> Response:
        return _json({"schema_id_requests": store.id_requests})

    app = Starlette(
        routes=[
            Route("/schemas/ids/{id:int}", available(schema_by_id)),
            Route("/schemas/types", available(types)),
            Route("/subjects", available(subjects)),
            Route("/subjects/{subject}/versions", available(register), methods=["POST"]),
            Route("/subjects/{subject}/versions", available(versions)),
            Route("/subjects/{subject}/versions/{version}", available(version)),
            Route("/subjects/{subject}", available(lookup), methods=["POST"]),
            Route("/_registry/outage", outage, methods=["POST"]),
            Route("/_registry/requests", requests),
        ]
    )
    app.state.store = store
    return app
