"""The base every contract model derives from: frozen, strict about unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1
"""Version of the wire format; bumped on any breaking change to a contract."""


class Contract(BaseModel):
    """A frozen pydantic model that rejects fields it does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid")
