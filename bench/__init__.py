"""Benchmark harness: prints figures; nothing here asserts on time."""
