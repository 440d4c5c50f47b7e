"""The chaos suite: ``python -m bench.chaos`` (``make chaos``).

A real broker, the demo services, the inventory adapter and several coordinators as
child processes; the demo flows requested at a steady rate, some requests published
twice; coordinators SIGKILLed and restarted, one added and removed, the broker
restarted. Then :mod:`bench.chaos.oracle` reads what the topics and the downstream
services hold and fails the run on a lost request, a duplicate result record, or a
compensation due and not run.
"""
