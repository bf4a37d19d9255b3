"""A tenant's token read from a file, and read again when the file changes: tokens rotate
without a restart.

A Kubernetes Secret mounted as a volume is updated in place: the kubelet writes the new files
into a fresh directory and swaps the ``..data`` symlink to it, so the path we were given now
leads to another inode. Following the path (``os.stat``, not ``lstat``) sees both that swap and
a plain rewrite of the file (a new modification time or size). The file is looked at no more
than once every ``check_every_s``, on the way to a call, so an idle tenant costs nothing and a
busy one one ``stat`` a second.

A re-read that finds the file missing, unreadable, empty or too short keeps the token in use
and logs one warning naming the file (never the token): a half-written file must not turn into
a broken token. Each new token joins the :class:`~service.redaction.SecretSet`, so the log
masks it from its first use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0


class TokenFileError(Exception):
    """The file cannot give a usable token; ``str()`` says why, without the file's content."""


def read_token(path: Path, min_chars: int) -> str:
    """The token in ``path`` (surrounding whitespace, such as a final newline, dropped)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise TokenFileError("empty")
    if len(token) < min_chars:
        raise TokenFileError(f"too short to be a real token (at least {min_chars} characters)")
    return token


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = os.stat(path)  # follows the symlinks a mounted Secret swaps
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_mtime_ns, found.st_size)


class TokenFile:
    """The current token of one tenant, from ``path``."""

    def __init__(
        self,
        path: Path,
        min_chars: int,
        *,
        on_new: Callable[[str], None] = lambda token: None,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Reads the file now (:class:`TokenFileError` if it gives no usable token);
        ``on_new`` is told each token read, the first one included."""
        self.path = path
        self._min_chars = min_chars
        self._on_new = on_new
        self._check_every_s = check_every_s
        self._clock = clock
        self._signature = _signature(path)
        self._token = read_token(path, min_chars)
        self._checked_at = clock()
        on_new(self._token)

    def current(self) -> str:
        """The token to use now, re-read first if the file changed since it was last read."""
        now = self._clock()
        if now - self._checked_at < self._check_every_s:
            return self._token
        self._checked_at = now
        signature = _signature(self.path)
        if signature == self._signature:
            return self._token
        self._signature = signature
        try:
            token = read_token(self.path, self._min_chars)
        except TokenFileError as exc:
            log.warning(
                "token file changed but gives no usable token; keeping the current one",
                extra={"token_file": str(self.path), "problem": str(exc)},
            )
            return self._token
        if token != self._token:
            self._token = token
            self._on_new(token)
            log.info("token re-read from its file", extra={"token_file": str(self.path)})
        return self._token
