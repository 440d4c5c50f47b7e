"""Optional per-flow tokens: a bearer token or an API key a caller must present.

The tokens file (``ORCH_INGRESS_TOKENS_FILE``, YAML or JSON) maps a flow name, or
``*`` for every flow, to the tokens that may call it::

    order-details: [s3cret-frontend, s3cret-mobile]
    "*": [s3cret-admin]

A loaded flow that is not named (and no ``*``) asks for no token. Once any token
is configured, a flow that is not loaded (a result of another ingress's flow, read
from Kafka) is protected and needs a ``*`` token. A caller presents a
token as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``. Tokens are
compared in constant time, all of them every time, so the answer's timing does
not tell how much of a token was right.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestrator.errors import SetupError

EVERY_FLOW = "*"


@dataclass(frozen=True, slots=True)
class TokenTable:
    """Which tokens may call which flow. Empty: no flow asks for a token.

    ``flows`` are the loaded flows (None: every flow counts as loaded). With tokens
    enabled, a flow outside them is protected: only a ``*`` token may see it.
    """

    tokens: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    flows: frozenset[str] | None = None

    def protects(self, flow: str) -> bool:
        """Whether calling (or reading the results of) ``flow`` needs a token."""
        if self.flows is not None and flow not in self.flows and self.enabled:
            return True
        return bool(self.tokens.get(flow) or self.tokens.get(EVERY_FLOW))

    @property
    def enabled(self) -> bool:
        """Whether any flow asks for a token."""
        return any(self.tokens.values())

    def allows(self, flow: str | None, presented: str | None) -> bool:
        """Whether ``presented`` may call ``flow`` (None: any protected flow)."""
        if flow is not None and not self.protects(flow):
            return True
        if presented is None:
            return False
        if flow is None:
            candidates: Iterable[bytes] = (t for tokens in self.tokens.values() for t in tokens)
        else:
            candidates = (*self.tokens.get(flow, ()), *self.tokens.get(EVERY_FLOW, ()))
        given = presented.encode()
        matched = False
        for token in candidates:
            matched |= hmac.compare_digest(given, token)
        return matched


def presented_token(authorization: str | None, api_key: str | None) -> str | None:
    """The token in ``Authorization: Bearer ...`` or ``X-API-Key``, if any."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key and api_key.strip():
        return api_key.strip()
    return None


def load_tokens(path: str, *, flows: Iterable[str]) -> TokenTable:
    """Read a tokens file; an empty path means no tokens.

    Raises:
        SetupError: the file cannot be read, is not a mapping of names to lists of
            strings, or names a flow that is not loaded.
    """
    if not path:
        return TokenTable()
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise SetupError(
            f"Cannot read ORCH_INGRESS_TOKENS_FILE {path}: {error.strerror}."
        ) from None
    except yaml.YAMLError as error:
        raise SetupError(f"ORCH_INGRESS_TOKENS_FILE {path} is not YAML or JSON: {error}") from None
    if not isinstance(raw, dict) or not all(
        isinstance(tokens, list) and all(isinstance(token, str) and token for token in tokens)
        for tokens in raw.values()
    ):
        raise SetupError(
            f"ORCH_INGRESS_TOKENS_FILE {path} must map flow names (or '*') to lists of "
            "tokens, e.g. `order-details: [s3cret]`."
        )
    known = set(flows)
    unknown = sorted(str(name) for name in raw if name != EVERY_FLOW and name not in known)
    if unknown:
        raise SetupError(
            f"ORCH_INGRESS_TOKENS_FILE {path} names flows that are not loaded: "
            f"{', '.join(unknown)} (loaded: {', '.join(sorted(known)) or 'none'})."
        )
    return TokenTable(
        tokens={
            str(name): tuple(token.encode() for token in tokens) for name, tokens in raw.items()
        },
        flows=frozenset(known),
    )
