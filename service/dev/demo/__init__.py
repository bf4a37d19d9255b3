"""``sagebridge demo``: the whole pipeline on one machine, with nothing set up beforehand.

A newcomer should see sagebridge work — both lanes, good and bad records, two tenants — in one
command, without installing Kafka or writing configuration. So this starts an embedded
Kafka-compatible broker (Tansu), finds or starts a Redis, runs the Cloud Connector sandbox and
the service in this process, sends a deterministic sample CRM feed, waits for every reply, and
prints what happened. Everything started here is stopped here, whatever goes wrong.

The demo reports what the replies say; it knows nothing about how the lanes work:
:mod:`~service.dev.demo.feed` writes the sample feed, :mod:`~service.dev.demo.stack` starts
the parts, :mod:`~service.dev.demo.tally` collects the answers, and
:mod:`~service.dev.demo.summary` prints them.
"""

from service.dev.demo.run import run_demo

__all__ = ["run_demo"]
