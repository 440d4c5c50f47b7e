"""The Restate peer: a ``restate-server`` from npm and a Python SDK service on hypercorn.

:mod:`.service` is the order-details flow written as the Restate Python SDK's docs
recommend (a ``restate.Service`` whose handler journals each GET with ``ctx.run_typed``
and waits for the concurrent ones with ``restate.gather``), served over HTTP/2
cleartext by hypercorn in a process of its own. The bench side that installs the
server, starts both, registers the deployment and calls the ingress is
:mod:`bench.systems.restate`.
"""
