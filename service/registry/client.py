"""One call of the Schema Registry's REST API: ``GET /schemas/ids/{id}``. HTTP only.

The answer (Confluent's documented shape) is ``{"schema": "<text>", "schemaType": "JSON"}``,
``schemaType`` absent for Avro; a 404 with ``error_code`` 40403 means the registry does not
know the id. Everything else that is not a schema — no connection, a timeout, a 5xx, a refused
credential (401/403) — is :class:`RegistryUnavailable`: the caller waits and asks again,
because no event is at fault. The password never appears in an error or a log line.
"""

from __future__ import annotations

import httpx
import orjson

from service.errors import SagebridgeError
from service.intake.wire import RegisteredSchema, UnusableSchema, parse_schema

SCHEMA_NOT_FOUND = 40403
"""The registry's error code for an id it does not know."""


class RegistryUnavailable(SagebridgeError):
    """The registry gave no usable answer this time; ask again later."""


class RegistryClient:
    """Asks one registry for schemas by id."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        auth = httpx.BasicAuth(user or "", password) if password is not None else None
        self.url = url
        self._http = httpx.AsyncClient(
            base_url=url,
            auth=auth,
            timeout=timeout_s,
            headers={"Accept": "application/vnd.schemaregistry.v1+json, application/json"},
            # HTTPS_PROXY and friends are the Connector's (service.connector.network); the
            # registry is asked directly, and never through a .netrc either.
            trust_env=False,
        )

    async def schema(self, schema_id: int) -> RegisteredSchema | UnusableSchema:
        """The schema registered under ``schema_id``, or why none can be used."""
        try:
            response = await self._http.get(f"/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(
                f"Schema Registry {self.url}: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from None
        if response.status_code == 404 and _error_code(response) == SCHEMA_NOT_FOUND:
            return UnusableSchema(schema_id, "the Schema Registry does not know this id")
        if response.status_code != 200:
            raise RegistryUnavailable(
                f"Schema Registry {self.url}: HTTP {response.status_code} for schema id {schema_id}"
            )
        try:
            body = orjson.loads(response.content)
            text, kind = body["schema"], body.get("schemaType") or "AVRO"
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise RegistryUnavailable(
                f"Schema Registry {self.url}: the answer for schema id {schema_id} is not a schema"
            ) from None
        if not isinstance(text, str) or not isinstance(kind, str):
            raise RegistryUnavailable(
                f"Schema Registry {self.url}: the answer for schema id {schema_id} is not a schema"
            )
        if body.get("references"):
            return UnusableSchema(
                schema_id, "schemas with references to other schemas are not read"
            )
        return parse_schema(schema_id, kind, text)

    async def aclose(self) -> None:
        await self._http.aclose()


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = orjson.loads(response.content).get("error_code")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return code if isinstance(code, int) else None
