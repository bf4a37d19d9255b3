"""The Schema Registry, as sagebridge uses it: schemas fetched by id over HTTP, kept by id.

Intake stays pure: before a poll is taken in, the bridge asks :class:`SchemaCache` for the ids
its wire-format values name; intake then decodes with what the cache holds
(:mod:`service.intake.wire`). A registry that cannot be reached is waited for, as the Cloud
Connector is: nothing is refused or dead-lettered because of an outage.
"""

from service.registry.cache import SchemaCache
from service.registry.client import RegistryClient, RegistryUnavailable

__all__ = ["RegistryClient", "RegistryUnavailable", "SchemaCache"]
