"""sagebridge: CRM record events from Kafka to the Sage 100 Contractor Cloud Connector.

The folders follow an event's path: :mod:`service.kafka` (the input subscriber) ->
:mod:`service.intake` (envelope, contract check, route) -> :mod:`service.lanes` (batch or
serial) -> :mod:`service.connector` (the REST client), with :mod:`service.state` (Redis locks
and ledger) beside the lanes -> :mod:`service.answers` (reply and dead letter) ->
:mod:`service.offsets` (commit). :mod:`service.app` builds them; :mod:`service.bridge` runs a
poll through them.

One convention runs through the per-event types (``Event``, ``Admitted``, ``Subject``,
``Consumed``, ``Delivery``): they are slotted dataclasses that are not frozen, because a frozen
dataclass sets every field through ``object.__setattr__`` and one is built for every event.
"""
