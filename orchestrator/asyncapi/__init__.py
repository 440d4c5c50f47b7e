"""An AsyncAPI 3.0 document of every topic a deployment's orchestrator and adapters use.

Generated, never written by hand: payloads are the contract models' JSON Schemas
(a flow's request names its ``input_schema``; a command to a typed SDK operation its
input type, the reply its output type), headers are the CloudEvents headers of
:mod:`contracts.cloudevents`, topic names come from the effective settings and the
loaded service catalog. Operations are the coordinator's (tag ``coordinator``) and
each Kafka adapter's (tag ``adapter``), each from its own point of view.

Pure: it reads loaded flows and settings, and imports no Kafka client.
``orchestrator docs FLOWS`` prints it.
"""

from orchestrator.asyncapi.document import ASYNCAPI_VERSION, asyncapi_document

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]
