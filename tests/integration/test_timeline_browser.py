"""The timeline page end to end: real broker, real coordinator, a real HTTP downstream,
the ingress app served by uvicorn, and Debian's chromium driven by Playwright.

One saga completes before the page's server starts (the timeline rebuilds it from
the result topic), one is compensated while it runs (followed live). The page must
list both, narrow the list with its filters, draw the compensated saga's calls and
undos on its time axis, list its errors, and show request ids as text, not markup.
Two hand-written results sit in the topic too: one of schema version 2 (no step
times, no call timeline: still in the window after an upgrade) and one with a call
withdrawn before it was sent (no start time); the page shows both, draws no bar for
the call that never began, and raises no script error anywhere.

`make test` installs chromium (``make browser``) when it can; where it cannot (no
root, no apt-get) this module is skipped with the reason, never failed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette

from contracts.flow import FlowDefinition
from orchestrator.catalog import catalog_from_data
from orchestrator.client import OrchestratorClient
from orchestrator.flow import compile_flow
from orchestrator.flow_files import FlowRegistry
from orchestrator.ingress import IngressConfig, create_app
from orchestrator.settings import CoordinatorSettings
from orchestrator.timeline import Timeline
from tests.integration.kafka_io import publish_raw
from tests.integration.png_pixels import pixel_counts
from tests.integration.saga_flows import (
    RESULT_TIMEOUT_S,
    SHOP,
    RecordingServer,
    answer_status,
    http_service,
    http_step,
    running,
    undo,
)

pytestmark = pytest.mark.kafka

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 20_000
"""Generous: the page polls every 3 s and the reader follows within a second."""
OK_ID = 'ok-<img src=x onerror="window.pwned=1">'
"""Markup in a request id must show as text."""
UNDO_ID = "undo-1"
V2_ID = "legacy-v2"
WITHDRAWN_ID = "legacy-withdrawn"
GREEN, RED, PURPLE = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0x6A, 0x1B, 0x9A)
"""The page's colours of an ok call, a failed call and a compensation."""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless chromium for the module (Debian's, never a downloaded one)."""
    if not CHROMIUM_INSTALLED:
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(`make browser` does it with apt-get when it can)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


def shop_flows(server: RecordingServer) -> FlowRegistry:
    """``order-ok`` (reserve, charge) and ``order-undo`` (the same, then a ship that
    keeps failing, so charge and reserve are undone)."""
    operations = ["reserve", "charge", "ship", "release", "refund"]
    catalog = catalog_from_data(
        {"services": {SHOP: http_service(server.url, operations)}}, source="timeline test"
    )
    undoable = {
        "reserve": http_step("reserve", compensate=undo("release", step="reserve")),
        "charge": http_step("charge", reads="reserve.id", compensate=undo("refund", step="charge")),
    }
    definitions = [
        {"name": "order-ok", "steps": undoable, "result": "charge"},
        {
            "name": "order-undo",
            "steps": {
                **undoable,
                "ship": http_step("ship", reads="charge.id", retry={"attempts": 2}),
            },
            "result": "`null`",
        },
    ]
    flows = {
        definition["name"]: compile_flow(
            FlowDefinition.model_validate(definition), catalog=catalog, source="timeline test"
        )
        for definition in definitions
    }
    return FlowRegistry(flows=flows, catalog=catalog)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            await asyncio.sleep(0.02)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        listener.close()


async def test_the_timeline_lists_filters_and_draws_a_compensated_saga(
    settings: CoordinatorSettings, browser: Any, tmp_path: Path
) -> None:
    with RecordingServer({"ship": answer_status(HTTPStatus.SERVICE_UNAVAILABLE, "busy")}) as shop:
        registry = shop_flows(shop)
        async with running(settings, registry) as (_, client):
            done = await client.run(
                "order-ok", {"id": "o-1"}, request_id=OK_ID, timeout_s=RESULT_TIMEOUT_S
            )
            assert done["status"] == "completed"
            await publish_legacy_results(settings)
            # The page's server starts after this result: it reads it back from the topic.
            async with (
                OrchestratorClient(settings, source="urn:orchestrator:ingress") as ingress,
                serving(ingress_app(settings, registry, ingress)) as base,
            ):
                undone = await client.run(
                    "order-undo", {"id": "o-2"}, request_id=UNDO_ID, timeout_s=RESULT_TIMEOUT_S
                )
                assert undone["status"] == "failed"
                await check_page(browser, base, tmp_path)


def ingress_app(
    settings: CoordinatorSettings, registry: FlowRegistry, client: OrchestratorClient
) -> Starlette:
    """The ingress app with the timeline, wired as ``orchestrator serve`` wires it."""
    config = IngressConfig.from_settings(settings, flows=registry.flows)
    timeline = Timeline(settings, tokens=config.tokens)
    return create_app(
        registry=registry,
        client=client,
        config=config,
        routes=timeline.routes,
        on_startup=[timeline.start],
        on_shutdown=[timeline.stop],
    )


async def publish_legacy_results(settings: CoordinatorSettings) -> None:
    """A schema version 2 result, and one whose second call was withdrawn unsent."""
    started = int(time.time() * 1000) - 60_000
    common = {"flow": "legacy", "status": "completed", "complete": True, "errors": []}
    v2 = {
        **common,
        "schema_version": 2,
        "request_id": V2_ID,
        "steps": [{"step": "charge", "status": "succeeded", "calls": 1, "failed_calls": 0}],
        "started_at_ms": started,
        "finished_at_ms": started + 30,
    }
    timed = {"attempts": 1, "error_code": None, "compensation": None}
    withdrawn = {
        **common,
        "schema_version": 3,
        "request_id": WITHDRAWN_ID,
        "steps": [
            {
                "step": "pay",
                "status": "succeeded",
                "calls": 2,
                "failed_calls": 0,
                "call_timeline": [
                    {**timed, "call": "pay#0", "started_ms": 0, "finished_ms": 20, "outcome": "ok"},
                    {
                        **timed,
                        "call": "pay#1",
                        "started_ms": None,
                        "finished_ms": 20,
                        "attempts": 0,
                        "outcome": "cancelled",
                    },
                ],
            }
        ],
        "started_at_ms": started - 1,
        "finished_at_ms": started + 20,
    }
    for body in (v2, withdrawn):
        await publish_raw(
            settings.bootstrap_servers,
            settings.result_topic,
            key=body["request_id"].encode(),
            value=orjson.dumps(body),
        )


def errors_of(page: Any) -> list[str]:
    """The script errors the page raises from now on (uncaught, or rejected promises)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


async def check_legacy_results(page: Any) -> None:
    """The hand-written results: a version 2 one, and one with a call never sent."""
    from playwright.async_api import expect

    axis = page.locator("#timeline-axis")
    # A result of schema version 2: its step is listed, with no bar and no error.
    await page.fill("#q-filter", "")
    await page.evaluate("location.hash = '#saga=' + encodeURIComponent('legacy-v2')")
    await expect(page.locator("#detail-title")).to_contain_text(V2_ID)
    await expect(axis.locator("g.call-row")).to_have_count(1)
    await expect(axis.locator('g[data-call="charge"]')).to_have_count(1)
    await expect(axis.locator("rect.call-bar")).to_have_count(0)
    # A call withdrawn before it was sent has no start: it gets a row, not a bar.
    await page.evaluate("location.hash = '#saga=' + encodeURIComponent('legacy-withdrawn')")
    await expect(page.locator("#detail-title")).to_contain_text(WITHDRAWN_ID)
    await expect(axis.locator("g.call-row")).to_have_count(2)
    await expect(axis.locator("rect.call-bar")).to_have_count(1)
    await expect(axis.locator("rect.call-bar")).to_have_attribute("data-call", "pay#0")
    await expect(page.locator("tr.saga-row")).to_have_count(4)


async def check_page(browser: Any, base: str, tmp_path: Path) -> None:
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    script_errors = errors_of(page)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    try:
        await page.goto(f"{base}/timeline")
        rows = page.locator("tr.saga-row")
        await expect(rows).to_have_count(4)
        # Markup in a request id is shown as text and never runs.
        await expect(rows.locator("td.request-id", has_text=OK_ID)).to_have_count(1)
        assert await page.evaluate("window.pwned") is None

        await page.select_option("#status-filter", "failed")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-request-id", UNDO_ID)
        await page.select_option("#status-filter", "")
        await page.select_option("#flow-filter", "order-ok")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-request-id", OK_ID)
        await page.select_option("#flow-filter", "")
        await page.fill("#q-filter", "undo")
        await expect(rows).to_have_count(1)

        await rows.first.click()
        axis = page.locator("#timeline-axis")
        await expect(axis).to_be_visible()
        calls = axis.locator("rect.call-bar")
        await expect(calls).to_have_count(3)
        assert [await bar.get_attribute("data-call") for bar in await calls.all()] == [
            "reserve",
            "charge",
            "ship",
        ]
        ship = axis.locator('rect.call-bar[data-call="ship"]')
        await expect(ship).to_have_attribute("data-outcome", "failed")
        await expect(axis.locator('g[data-call="ship"] text.attempts')).to_have_text("×2")
        undos = axis.locator("rect.undo-bar")
        await expect(undos).to_have_count(2)
        assert {await bar.get_attribute("data-outcome") for bar in await undos.all()} == {"ok"}
        await expect(page.locator("#saga-errors li")).to_have_count(1)
        await expect(page.locator("#saga-errors li")).to_contain_text("step.technical_error")
        await expect(page.locator("#saga-errors li")).to_contain_text("http.503")
        # Undos are drawn after the call they undo, and after the failure.
        ship_box, charge_box, refund_box = [
            await axis.locator(selector).bounding_box()
            for selector in (
                'rect.call-bar[data-call="ship"]',
                'rect.call-bar[data-call="charge"]',
                'rect.undo-bar[data-call="charge"]',
            )
        ]
        assert ship_box is not None
        assert charge_box is not None
        assert refund_box is not None
        assert refund_box["x"] >= charge_box["x"] + charge_box["width"] - 1
        assert refund_box["x"] >= ship_box["x"] + ship_box["width"] - 1

        # TIMELINE_SCREENSHOT=<file> keeps a copy to look at (tmp_path goes away).
        keep = os.environ.get("TIMELINE_SCREENSHOT") or str(tmp_path / "timeline.png")
        await page.screenshot(path=keep, full_page=True)
        colours = pixel_counts(await axis.screenshot())
        # The screenshot shows the ok calls, the failed call and the undos in their colours.
        for colour in (GREEN, RED, PURPLE):
            assert colours[colour] >= 50, f"colour {colour} barely drawn: {colours.most_common(6)}"

        await check_legacy_results(page)
        assert script_errors == []
    finally:
        await page.close()
