"""Service adapters: the HTTP adapter, the adapter SDK, the demo services."""
