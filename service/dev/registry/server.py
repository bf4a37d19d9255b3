"""The development Schema Registry on a background thread, for tests and the demo."""

from __future__ import annotations

from service.dev.registry.app import Store, build_app
from service.dev.sandbox.server import AppThread


class RegistryThread(AppThread):
    """The registry on a free port of this machine (see :class:`AppThread`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = build_app()
        self.store: Store = app.state.store
        super().__init__(app, host, port, "schema-registry")
