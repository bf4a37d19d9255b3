"""The sections :class:`~service.config.Settings` is made of, one per thing they configure.

Each section is a plain pydantic model holding its fields, their defaults, bounds and
validators; :class:`~service.config.Settings` inherits them all, so every ``SAGEBRIDGE_*``
name stays flat (``settings.kafka_bootstrap``) and one environment reads into one object. A
rule that spans sections (the lease outlasting a call) lives on ``Settings`` itself.
"""

ENV_PREFIX = "SAGEBRIDGE_"
