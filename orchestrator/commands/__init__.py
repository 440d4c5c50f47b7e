"""Subcommands of ``orchestrator`` that live in modules of their own.

Each module here exposes ``register(commands)``, which adds its subparser (with an
example in its ``--help``) and sets ``command`` to a function of the parsed arguments
returning an exit status. Module-level imports stay light (the CLI starts on every
call): Kafka, HTTP and tracing libraries are imported inside the command.
"""

from __future__ import annotations

import argparse
import importlib

COMMAND_MODULES: tuple[str, ...] = ("config", "docs", "serve", "status")
"""Modules under ``orchestrator.commands`` whose ``register`` the CLI calls, in order."""


def register_all(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add every module's subcommand to ``commands``."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"orchestrator.commands.{name}")
        module.register(commands)
