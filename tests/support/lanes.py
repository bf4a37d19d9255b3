"""What tests that build a lane by hand pass for the collaborators the wiring normally supplies."""

from __future__ import annotations


async def never_doubtful(ticket: object) -> bool:
    """The serial lane's ``doubtful`` for a test whose Redis never loses data."""
    return False
