"""The serial lane: transactional records, one call at a time per tenant, across all replicas.

:mod:`~service.lanes.serial.scheduler` queues records and runs one worker per tenant;
:mod:`~service.lanes.serial.turn` takes one record, or one array, through a hold;
:mod:`~service.lanes.serial.hold` is one acquisition of the tenant's lock.
"""

from service.lanes.serial.scheduler import SerialLane, SerialPolicy
from service.lanes.serial.turn import ArrayRule, FencedPost

__all__ = ["ArrayRule", "FencedPost", "SerialLane", "SerialPolicy"]
