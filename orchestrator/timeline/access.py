"""Who sees which sagas: the ingress's per-flow tokens cover the timeline too.

A caller sees the sagas of the flows that ask for no token, and of those its token
(``Authorization: Bearer <token>`` or ``X-API-Key: <token>``) may call; sagas of a
flow this process did not load only with a ``*`` token (the rule lives in
:class:`~orchestrator.ingress.auth.TokenTable`); a result with no flow (an
undecodable request) only with a valid token, when any flow asks for one. The page
itself holds no data and needs no token.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from orchestrator.ingress.auth import TokenTable, presented_token

FlowFilter = Callable[[str | None], bool]
"""Whether the caller may see the sagas of a flow (None: sagas with no flow)."""


def visible_flows(tokens: TokenTable | None, request: Request) -> FlowFilter | None:
    """What ``request``'s caller may see; None when no flow asks for a token."""
    if tokens is None or not tokens.enabled:
        return None
    table = tokens
    token = presented_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
    decided: dict[str | None, bool] = {}

    def visible(flow: str | None) -> bool:
        # One check per flow and request: tokens are compared in constant time.
        if flow not in decided:
            decided[flow] = table.allows(flow, token)
        return decided[flow]

    return visible
