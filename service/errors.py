"""Every exception sagebridge raises on purpose, under one root.

Expected trouble is a value, not an exception: a bad field is a
:class:`~service.intake.contracts.FieldError`, a failed call a
:data:`~service.connector.results.CallResult`. What remains are the cases that end an operation, and
callers catch exactly the class they mean:

- :class:`StartupError` refuses start-up; ``str()`` is the one line an operator reads in a
  crash-looping pod, and :attr:`StartupError.what` says which kind of input was wrong.
- :class:`StateError` means Redis no longer vouches for a transactional call: it is unreachable
  (:class:`StateUnavailable`, raised by ``state/`` for every Redis failure), the lock's lease is
  gone, or Redis lost its data (see :mod:`service.state.epoch`).
- :class:`NotAcknowledged` means Kafka did not confirm an answer in time.
- :class:`ToolError` ends an operator's command with one line and a non-zero exit;
  :class:`VerdictRefused` is the one a person can act on (wait, or look again).
"""

from __future__ import annotations

from datetime import datetime


class SagebridgeError(Exception):
    """The root: ``except SagebridgeError`` catches every error sagebridge raises on purpose."""


class StartupError(SagebridgeError):
    """Configuration or input files that make starting pointless; ``str()`` is one line."""

    what = "cannot start"


class SettingsError(StartupError, ValueError):
    """A setting is missing or malformed; ``str()`` names the variable."""

    what = "bad setting"


class ContractFileError(StartupError, ValueError):
    """A table contract or the route table cannot be read or is inconsistent."""

    what = "bad contracts (SAGEBRIDGE_CONTRACTS_DIR)"


class DevStackError(StartupError, RuntimeError):
    """A part of the local development stack (Tansu, Redis) could not be started."""

    what = "cannot start the local stack"


class FaultsError(SagebridgeError, ValueError):
    """The sandbox was asked for faults it cannot inject (bad rate, unknown status)."""


class StateError(SagebridgeError):
    """Redis no longer vouches for the call about to be made: it must not be made."""


class StateUnavailable(StateError):
    """Redis could not be reached, or failed a command: nothing it was asked is known to have
    happened. ``str()`` names the failure's type only (never a host or a password)."""


class LeaseLost(StateError):
    """The tenant lock is no longer ours (expired, or taken over), so no call may start."""


class EpochMovedError(StateError):
    """Redis lost its data since this lease was granted (see :mod:`service.state.epoch`)."""


class NotAcknowledged(SagebridgeError):
    """Kafka did not acknowledge a reply or dead letter within the acknowledgement timeout."""


class ToolError(SagebridgeError):
    """An operator's command (``dlt``, ``ledger``) cannot do what was asked: Kafka or Redis is
    unreachable, or the request is refused; ``str()`` is the one line the command prints."""


class VerdictRefused(ToolError):
    """``ledger resolve`` refused the verdict and wrote nothing: the entry is not an intent, or
    ``--not-delivered`` came before :attr:`accepted_from` (the settle guard)."""

    def __init__(self, message: str, accepted_from: datetime | None = None) -> None:
        super().__init__(message)
        self.accepted_from = accepted_from


class ImagesUnavailable(StateError):
    """Redis could not be read or written for record images (:mod:`service.state.images`):
    an UPDATE that needs an image is refused, never built without one."""
