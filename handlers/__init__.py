"""Service adapters: the built-in HTTP adapter, the adapter SDK and its Kafka worker.

Write an adapter::

    from handlers import BusinessError, CallContext, Service

    pricing = Service("pricing")

    @pricing.operation("quote")
    async def quote(request: QuoteRequest) -> Quote: ...

    @pricing.operation  # named "reserve"; ctx carries the call's idempotency key
    async def reserve(request: ReserveRequest, ctx: CallContext) -> Reserved: ...
"""

from handlers.context import CallContext
from handlers.errors import AdapterSetupError, BusinessError, HandlerError
from handlers.http import HttpAdapter
from handlers.outcome import CallOutcome
from handlers.sdk import Service
from handlers.worker import build_worker

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
