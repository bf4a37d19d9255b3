"""The size rule every event is held to, in one place, so each stage can rely on the ones before.

An event is checked against these limits before it reaches a lane. Everything after that check
can then take the record as given: the ledger's fingerprint and the JSON body for the Cloud
Connector are both ``orjson.dumps``, which refuses more than 254 levels of nesting, and a
record of at most :data:`MAX_DEPTH` levels stays far inside that even wrapped in a batch array.

Where each limit is enforced:

- the envelope (:mod:`service.intake.envelope`, stage ``parse``): the value's size
  (``SAGEBRIDGE_MAX_EVENT_BYTES``), :data:`MAX_ID_CHARS` for ``event_id``, ``correlation_id`` and
  the tenant's parts, :data:`MAX_TYPE_CHARS` for ``type``; the JSON parser itself stops at 1024
  levels, so parsing an event can never recurse without bound;
- the record checks (:mod:`service.intake.contracts`, stage ``validation``): a table contract takes
  only strings and numbers, so its records are one level deep; a free-form (transactional)
  record may nest, at most :data:`MAX_DEPTH` levels and :data:`MAX_VALUES` values.
"""

from __future__ import annotations

MAX_ID_CHARS = 128
"""``event_id``, ``correlation_id``, tenant ``customer`` and ``company``."""
MAX_TYPE_CHARS = 128
"""``type``: it names a route, and is echoed in replies, logs and dead letters."""
MAX_DEPTH = 64
"""Levels of objects and arrays in a record, the record itself being level 1."""
MAX_VALUES = 50_000
"""Values in a record (objects, arrays, strings, numbers, booleans, nulls), the record included.
It bounds the work of checking a record and the memory of encoding it: ``orjson.dumps`` reserves
about 200 bytes per array element and 400 per object member while it writes, so a 1 MB event
of half a million tiny values would briefly take 100 MB or more."""
MAX_FIELD_NAME_CHARS = 100
"""How much of one field name an error echoes."""
MAX_PATH_CHARS = 300
"""How much of a nested field's path an error echoes (its start and its end)."""
