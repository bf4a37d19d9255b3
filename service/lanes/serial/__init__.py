"""The serial lane: transactional records, one call at a time per tenant, across all replicas.

:mod:`~service.lanes.serial.scheduler` hands each record to its company's worker;
:mod:`~service.lanes.serial.worker` is one company's queue and the task that serves it, through
its :mod:`~service.lanes.serial.gate` (the company's breaker, then its lock);
:mod:`~service.lanes.serial.turn` takes one record, or one array, through a hold;
:mod:`~service.lanes.serial.hold` is one acquisition of the company's lock.
"""

from service.lanes.serial.policy import SerialPolicy
from service.lanes.serial.scheduler import SerialLane
from service.lanes.serial.turn import ArrayRule, FencedPost

__all__ = ["ArrayRule", "FencedPost", "SerialLane", "SerialPolicy"]
