"""The HTTP ingress: run flows over HTTP (``orchestrator serve FLOWS``).

A thin client of the orchestrator: it publishes request events and answers with
result events; it never runs a saga. Build the app with :func:`create_app`.
"""

from orchestrator.ingress.app import create_app
from orchestrator.ingress.auth import TokenTable, load_tokens
from orchestrator.ingress.config import IngressConfig
from orchestrator.ingress.openapi import build_openapi
from orchestrator.ingress.status import status_of_code, status_of_result

__all__ = [
    "IngressConfig",
    "TokenTable",
    "build_openapi",
    "create_app",
    "load_tokens",
    "status_of_code",
    "status_of_result",
]
