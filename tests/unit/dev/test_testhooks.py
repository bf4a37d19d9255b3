"""The test hooks are off unless their variable is set, and change nothing else when on."""

from __future__ import annotations

from service.config import load_settings
from service.dev.testhooks import SIGKILL_ON, sigkill_on_marker
from service.intake.admit import Intake
from service.intake.routes import RouteTable
from service.intake.topics import ReplyTopics
from service.tenants import TenantDirectory


def test_the_test_hook_is_off_unless_its_variable_is_set() -> None:
    rules = ReplyTopics.from_settings(load_settings())
    intake = Intake(RouteTable({}, {}), TenantDirectory({}, None), 1024, rules)
    assert sigkill_on_marker(intake, environ={}) is intake
    armed = sigkill_on_marker(intake, environ={SIGKILL_ON: "poison"})
    assert armed is not intake
    assert armed.admit(b'{"event_id": "e", "type": "t", "data": {}}') == intake.admit(
        b'{"event_id": "e", "type": "t", "data": {}}'
    )
