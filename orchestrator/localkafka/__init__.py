"""Run a pinned Apache Kafka broker locally, fetched with Maven, no Docker needed.

One single-node KRaft broker (broker and controller in one JVM) listens on
127.0.0.1. The jars are fetched once into a cache; each broker has a runtime
folder with its data, configs, logs and pid file.

Typical use::

    from orchestrator.localkafka import BrokerSettings, running_broker

    with running_broker(BrokerSettings(port=0)) as broker:
        print(broker.bootstrap)
"""

from __future__ import annotations

from .config import BrokerSettings
from .context import bootstrap_from_env, running_broker
from .fetch import ensure_kafka_jars
from .models import BrokerInfo, BrokerStatus
from .process import start, status, stop
from .secure import SecureListeners

__all__ = [
    "BrokerInfo",
    "BrokerSettings",
    "BrokerStatus",
    "SecureListeners",
    "bootstrap_from_env",
    "ensure_kafka_jars",
    "running_broker",
    "start",
    "status",
    "stop",
]
