"""Service adapters: the built-in HTTP adapter, the adapter SDK and its Kafka worker.

Write an adapter::

    from handlers import BusinessError, CallContext, Service

    pricing = Service("pricing")

    @pricing.operation("quote")
    async def quote(request: QuoteRequest) -> Quote: ...

    @pricing.operation  # named "reserve"; ctx carries the call's idempotency key
    async def reserve(request: ReserveRequest, ctx: CallContext) -> Reserved: ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handlers.context import CallContext
    from handlers.errors import AdapterSetupError, BusinessError, HandlerError
    from handlers.http import HttpAdapter
    from handlers.outcome import CallOutcome
    from handlers.sdk import Service
    from handlers.worker import build_worker

_HOMES = {
    "AdapterSetupError": "handlers.errors",
    "BusinessError": "handlers.errors",
    "CallContext": "handlers.context",
    "CallOutcome": "handlers.outcome",
    "HandlerError": "handlers.errors",
    "HttpAdapter": "handlers.http",
    "Service": "handlers.sdk",
    "build_worker": "handlers.worker",
}
"""Where each public name lives: imported on first use, so that importing one
module of the package (the templates the flow compiler uses) does not load the
HTTP client, FastStream and aiokafka."""

__all__ = [
    "AdapterSetupError",
    "BusinessError",
    "CallContext",
    "CallOutcome",
    "HandlerError",
    "HttpAdapter",
    "Service",
    "build_worker",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'handlers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # asked once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
