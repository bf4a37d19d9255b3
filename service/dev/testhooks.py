"""Test hooks: faults a test switches on in a real ``sagebridge run`` process. All are off unless
their variable is set, and none is a setting (they appear in no chart, compose file or ``.env``).

``SAGEBRIDGE_TEST_HOOK_SIGKILL_ON=<marker>``: the process sends itself SIGKILL while taking in a
record whose value contains ``<marker>`` (inside intake, where an OOM kill in a contract check or
a crash in a C extension would strike). The crash-loop breaker's system test uses it to make a
record that really kills the process. Start-up logs a warning when it is set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from collections.abc import Mapping

from service.intake.admit import Admitted, Imaging, Intake, Refused
from service.intake.cloudevents import Headers

log = logging.getLogger(__name__)

SIGKILL_ON = "SAGEBRIDGE_TEST_HOOK_SIGKILL_ON"


def sigkill_on_marker(intake: Intake, environ: Mapping[str, str] = os.environ) -> Intake:
    """``intake`` itself, or (when the hook is set) an intake that kills the process first."""
    marker = environ.get(SIGKILL_ON, "")
    if not marker:
        return intake
    log.warning(
        "test hook armed: a record containing the marker kills this process",
        extra={"variable": SIGKILL_ON},
    )
    fields = {f.name: getattr(intake, f.name) for f in dataclasses.fields(intake)}
    return _SigkillOnMarker(**fields, marker=marker.encode())


@dataclasses.dataclass(frozen=True, slots=True)
class _SigkillOnMarker(Intake):
    marker: bytes = b""

    def admit(
        self, value: bytes | None, headers: Headers = (), topic: str | None = None
    ) -> Admitted | Refused | Imaging:
        if value is not None and self.marker in value:
            log.warning(
                "test hook: SIGKILL while taking in a record", extra={"variable": SIGKILL_ON}
            )
            os.kill(os.getpid(), signal.SIGKILL)
        return Intake.admit(self, value, headers, topic)
