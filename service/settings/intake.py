"""What the service accepts from the CRM: the contracts it checks against, the size of an
event, how many records one may name, the Schema Registry that decodes values, the record
images kept between changes, and how many deaths a record may cause."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
"""The table contracts, routes and mappings shipped with the service (``contracts/``)."""


class IntakeSettings(BaseModel):
    contracts_dir: Path = DEFAULT_CONTRACTS_DIR
    max_event_bytes: int = Field(1_000_000, ge=1_024)
    """Largest event value accepted; bigger ones are refused at parse (Kafka's own default)."""
    max_record_ids: int = Field(1_000, ge=1, le=100_000)
    """Most CRM records one change event may stand for (Salesforce merges one change to many
    records into one event); an event naming more is refused whole, at ``validation``."""
    crash_loop_limit: int = Field(3, ge=2, le=100)
    """Deaths of its own (taken in alone) a record may cause before it is answered ERROR
    unread (:mod:`service.intake.crash_loop`); a poison record costs one more, which only names the
    poll. At least 2: one kill from outside while a record is taken in alone never condemns it."""
    schema_registry_url: str | None = None
    """A Confluent-compatible Schema Registry: values in its wire format are decoded with the
    schema it names (:mod:`service.registry`). Unset: such values are refused at ``parse``."""
    schema_registry_user: str | None = None
    schema_registry_password: SecretStr | None = None
    """Basic-auth credentials for the registry (Confluent Cloud: API key and secret)."""
    image_ttl_s: int = Field(400 * 24 * 3600, ge=3600)
    """How long a record image is kept after its last change (or seed): a contact edited once
    a year keeps its image, one never changed again goes, and so do ids a hostile producer
    invented."""
    image_max_bytes: int = Field(131_072, ge=1_024)
    """Largest record image kept (the mapped fields as JSON); a change that would make one
    bigger is refused (``validation``) and the image dropped. Capped at
    SAGEBRIDGE_MAX_EVENT_BYTES."""

    @property
    def image_bound(self) -> int:
        """The image size bound in force: an image is rebuilt into one event's record."""
        return min(self.image_max_bytes, self.max_event_bytes)

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError(
                "put the credentials in SAGEBRIDGE_SCHEMA_REGISTRY_USER and _PASSWORD, "
                "not in the URL (a URL is printed; the password would be too)"
            )
        return value.strip().rstrip("/")
