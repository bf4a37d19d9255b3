"""A Sage 100 Contractor Cloud Connector emulator for tests, demos and local development.

It checks every record against the same contracts as the bridge, counts overlapping
transactional calls, and injects faults on demand; see :mod:`service.dev.sandbox.app`.
"""

from service.dev.sandbox.options import SandboxOptions
from service.dev.sandbox.server import SandboxThread, build_app, serve

__all__ = ["SandboxOptions", "SandboxThread", "build_app", "serve"]
