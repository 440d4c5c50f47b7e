"""The Temporal peer: a dev server built from ``go.temporal.io/server`` and a Python worker.

``server/`` is a small Go program embedding the Temporal server with the in-memory
SQLite store (what ``temporal server start-dev`` runs); :mod:`.workflows` and
:mod:`.activities` are the order-details flow written as the Temporal Python SDK's
docs recommend; :mod:`.worker` hosts them in their own process. The bench side that
builds, starts and drives all this is :mod:`bench.systems.temporal`.
"""
