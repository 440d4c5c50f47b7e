"""``orchestrator docs FLOWS``: the AsyncAPI 3.0 document of a flows folder's topics."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

EPILOG = textwrap.dedent(
    """\
    examples:
      orchestrator docs handlers/demo/flows --out asyncapi.yaml
      orchestrator docs handlers/demo/flows --adapter handlers.demo.inventory:inventory \\
          --format json > asyncapi.json

    Topic names come from the effective settings (ORCH_REQUEST_TOPIC, ...), command
    topics from services.yaml (environment references expanded). With --adapter, a
    Kafka service's commands and replies carry its SDK operations' typed schemas.
    """
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``docs`` subcommand."""
    docs = commands.add_parser(
        "docs",
        help="write the AsyncAPI 3.0 document of every topic the flows use",
        description="Generate the AsyncAPI 3.0 document of the topics of a flows folder: "
        "requests, results, replies, dead letters, the changelog and every Kafka "
        "service's command topic.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    docs.add_argument("flows", type=Path, help="folder with services.yaml and flow files")
    docs.add_argument("--out", type=Path, help="write the document to FILE (default: stdout)")
    docs.add_argument(
        "--format",
        choices=["yaml", "json"],
        help="yaml (the default) or json; a --out ending in .json means json",
    )
    docs.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="an SDK Service behind a Kafka service of the catalog (repeatable)",
    )
    docs.add_argument(
        "--services", type=Path, help="service catalog (default: services.yaml beside)"
    )
    docs.set_defaults(command=run_docs)


def run_docs(arguments: argparse.Namespace) -> int:
    """Load the flows, generate the document, print or write it."""
    from orchestrator.asyncapi import asyncapi_document
    from orchestrator.catalog import import_service
    from orchestrator.errors import SetupError
    from orchestrator.flow_files import load_flows
    from orchestrator.settings import CoordinatorSettings

    registry = load_flows(arguments.flows, catalog_path=arguments.services)
    adapters = [
        import_service(reference, where=f"--adapter {reference}") for reference in arguments.adapter
    ]
    document = asyncapi_document(
        registry, settings=CoordinatorSettings.from_env(), adapters=adapters, version=_version()
    )
    out: Path | None = arguments.out
    as_json = arguments.format == "json" or (
        arguments.format is None and out is not None and out.suffix == ".json"
    )
    text = render(document, as_json=as_json)
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text)
        except OSError as error:
            raise SetupError(f"Cannot write {out}: {error.strerror}.") from None
        print(f"wrote {out}", file=sys.stderr)
    return 0


def render(document: dict[str, Any], *, as_json: bool) -> str:
    """The document as JSON, or as YAML without anchors (some tools cannot read them)."""
    if as_json:
        import orjson

        return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
    import yaml

    class _PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text_block(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
        # Descriptions with line breaks read best as literal blocks.
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    _PlainDumper.add_representer(str, text_block)
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kafka-orchestrator")
    except PackageNotFoundError:
        return "0.0.0"
