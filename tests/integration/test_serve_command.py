"""``orchestrator serve`` as a process of its own: it starts, serves, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.commands.serve import bind
from orchestrator.errors import SetupError
from orchestrator.settings import CoordinatorSettings
from tests.integration.durability_io import create_topics

pytestmark = pytest.mark.kafka

FLOW = """\
name: lookup
description: Look one thing up.
input_schema:
  type: object
  required: [thing_id]
  properties: {thing_id: {type: string}}
steps:
  thing: {service: things, operation: get, input: {id: input.thing_id}}
result: thing
"""


async def test_serve_answers_health_and_openapi_and_stops_on_sigterm(
    settings: CoordinatorSettings, tmp_path: Path
) -> None:
    await create_topics(settings)
    (tmp_path / "services.yaml").write_text(
        "services:\n  things:\n    kind: http\n    allow: {loopback: true}\n"
        "    base_url: http://127.0.0.1:9\n"
        "    operations: {get: {path: '/things/{id}'}}\n"
    )
    (tmp_path / "lookup.yaml").write_text(FLOW)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        str(tmp_path),
        "--port",
        "0",
        env={**os.environ, **settings.to_env()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{found[1]}") as http:
            healthz = await http.get("/healthz")
            readyz = await http.get("/readyz")
            document = (await http.get("/openapi.json")).json()
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)

    assert "Ingress serving 1 flow(s) (lookup)" in line
    assert (healthz.status_code, readyz.status_code) == (200, 200)
    schema = document["paths"]["/flows/lookup"]["post"]["requestBody"]["content"]
    assert schema["application/json"]["schema"]["required"] == ["thing_id"]
    assert code == 0


def test_a_taken_port_is_one_sentence() -> None:
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(SetupError, match=f"Cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        taken.close()
