"""The orchestrator's error tree.

Every error has a stable ``code`` that a user can search for, and a ``retriable``
flag: retrying a terminal error cannot help, retrying a retriable one may.

::

    OrchestratorError
     ├── SetupError (also ValueError)      a declaration is wrong: fix the file or setting
     │    ├── FlowLoadError                a flow file is invalid
     │    └── CatalogLoadError             the service catalog is invalid
     └── BrokerError                       the local Kafka broker cannot be run
          ├── ToolMissingError             Java or Maven is not installed
          ├── BrokerFetchError             Maven could not fetch the Kafka jars
          └── BrokerStartError             the broker did not start or stop cleanly
"""

from __future__ import annotations

from typing import ClassVar


class OrchestratorError(Exception):
    """Base class of every error the orchestrator raises on purpose."""

    code: ClassVar[str] = "orchestrator.error"
    retriable: ClassVar[bool] = False


class SetupError(OrchestratorError, ValueError):
    """A flow, catalog or setting is wrong; the message names what to change."""

    code = "setup.invalid"


class FlowLoadError(SetupError):
    """A flow definition failed its static checks."""

    code = "flow.invalid"


class CatalogLoadError(SetupError):
    """The service catalog failed its static checks."""

    code = "catalog.invalid"


class BrokerError(OrchestratorError):
    """The local Apache Kafka broker could not be fetched, started or stopped."""

    code = "broker.error"


class ToolMissingError(BrokerError):
    """Java or Maven is missing, so the local broker cannot be run."""

    code = "broker.tool_missing"


class BrokerFetchError(BrokerError):
    """Maven could not fetch the pinned Apache Kafka artifacts."""

    code = "broker.fetch_failed"
    retriable = True


class BrokerStartError(BrokerError):
    """The broker process did not become ready, or did not stop."""

    code = "broker.start_failed"
    retriable = True
