"""A Confluent-compatible Schema Registry for tests, the demo and local development.

It serves the documented REST endpoints the serializers and sagebridge use, from memory; see
:mod:`service.dev.registry.app`.
"""

from service.dev.registry.app import build_app
from service.dev.registry.server import RegistryThread

__all__ = ["RegistryThread", "build_app"]
