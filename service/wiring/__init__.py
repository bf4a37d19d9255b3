"""The composition root's builders: each builds one group of parts from the settings, on one
side — what is kept in Redis, the calls out over HTTP, the answering side in Kafka, the Redis
watchers — so :mod:`service.app` reads as the event's path.

No builder here reaches both Kafka and the Cloud Connector (``tests/unit/test_layers.py``
checks it): only :mod:`service.app` puts the two together.
"""
