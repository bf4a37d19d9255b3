"""The sandbox's front door: which tokens it accepts, for which company, and the headers a
call must carry. Messages name a token by its label (``token#1``), never by its value."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from service.dev.sandbox.responses import CallResponse, error
from service.tenants import TenantKey


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a configured token may do. ``label`` stands in for the token wherever it is shown."""

    token: str
    label: str
    tenant: TenantKey | None
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
            token, tenant = head, TenantKey(customer, company)
        if not token:
            raise ValueError(f"sandbox: token #{number} is empty")
        grants.append(TokenGrant(token=token, label=f"token#{number}", tenant=tenant))
    return grants


class FrontDoor:
    """Checks a call's token and headers against the configured grants."""

    def __init__(self, grants: list[TokenGrant]) -> None:
        self.grants = grants

    def check(
        self, request: Request, customer: str, company: str, needs_body: bool = True
    ) -> tuple[str | None, CallResponse | None]:
        """The token's label (``None`` if unknown), and the refusal, if any."""
        grant = self._grant(request.headers.get("auth-token", ""))
        if grant is None:
            return None, (401, error("sandbox: missing or unknown Auth-Token"))
        for name, value in (("customer", customer), ("company", company)):
            if not value:
                return grant.label, (400, error(f"sandbox: missing header: {name}"))
        if grant.tenant is not None and grant.tenant != (customer, company):
            bound_customer, bound_company = grant.tenant
            return grant.label, (
                403,
                error(
                    f"sandbox: Auth-Token {grant.label} is bound to customer {bound_customer} "
                    f"company {bound_company}, not customer {customer} company {company}"
                ),
            )
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if needs_body and media_type != "application/json":
            return grant.label, (400, error("sandbox: Content-Type must be application/json"))
        return grant.label, None

    def _grant(self, token: str) -> TokenGrant | None:
        found = None
        for grant in self.grants:  # compare against all, in constant time per token
            if hmac.compare_digest(grant.token.encode(), token.encode()) and found is None:
                found = grant
        return found
