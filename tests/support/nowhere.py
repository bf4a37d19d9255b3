"""An address where nothing listens, or where a peer listens and never answers, for as long as a
test needs it.

A port that was free a moment ago (``free_port()``) is no such address: the other pytest
worker, or any process on the machine, may bind it next, and a client then talks to whatever
answers there (a start-up wait that should give up in 6 s hung on one for 40). A socket bound to
the port and never listening keeps every other bind off it, so connecting is refused at once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def port_nobody_listens_on() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # no SO_REUSEADDR, no listen(): refused, and not rebound
        yield int(held.getsockname()[1])


@contextmanager
def port_that_never_answers() -> Iterator[int]:
    """A port whose connections are accepted (the kernel completes the handshake into the
    listen backlog) and then never read from or answered: a broker hung, or a firewall that
    swallows packets after the SYN."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield int(silent.getsockname()[1])
