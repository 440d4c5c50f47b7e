"""The timeline's routes over a store filled by hand (no broker)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from orchestrator.ingress.auth import TokenTable
from orchestrator.timeline.routes import timeline_routes
from orchestrator.timeline.store import TimelineStore


def client_with(*request_ids: str) -> httpx.AsyncClient:
    store = TimelineStore(max_sagas=10)
    for number, request_id in enumerate(request_ids):
        store.add_result(
            {
                "request_id": request_id,
                "flow": "orders",
                "status": "failed",
                "complete": False,
                "steps": [],
                "errors": [{"code": "step.timeout", "message": "<b>no</b>"}],
                "started_at_ms": number,
                "finished_at_ms": number + 5,
            }
        )
    app = Starlette(routes=timeline_routes(store))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://timeline")


async def test_the_page_is_self_contained_and_builds_no_markup_from_data() -> None:
    response = await client_with().get("/timeline")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script src" not in page
    assert "<link" not in page
    assert "https://" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "innerHTML" not in page


async def test_the_list_filters_and_the_detail_finds_ids_with_slashes() -> None:
    client = client_with("a/1", "b:2")

    listed = (await client.get("/timeline/api/sagas", params={"q": "A/"})).json()
    assert [s["request_id"] for s in listed["sagas"]] == ["a/1"]
    assert listed["flows"] == ["orders"]

    detail = await client.get("/timeline/api/sagas/a%2F1")
    assert detail.status_code == 200
    assert detail.json()["errors"][0]["message"] == "<b>no</b>"
    assert (await client.get("/timeline/api/sagas/nope")).status_code == 404


async def test_bad_filters_are_told_in_one_sentence() -> None:
    client = client_with()

    wrong = await client.get("/timeline/api/sagas", params={"status": "done"})
    assert wrong.status_code == 400
    assert "status must be one of" in wrong.json()["error"]
    assert (await client.get("/timeline/api/sagas", params={"limit": "x"})).status_code == 400


async def test_with_tokens_a_caller_sees_only_the_flows_it_may_call() -> None:
    store = TimelineStore(max_sagas=10)
    for request_id, flow in (("o-1", "orders"), ("p-1", "payments"), ("x-1", None)):
        store.add_result(
            {"request_id": request_id, "flow": flow, "status": "completed", "started_at_ms": 1}
        )
    tokens = TokenTable(tokens={"payments": (b"pay-token",)})
    app = Starlette(routes=timeline_routes(store, tokens=tokens))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://timeline")

    async def seen(headers: dict[str, str]) -> list[str]:
        body = (await client.get("/timeline/api/sagas", headers=headers)).json()
        assert body["tokens"] is True
        return sorted(saga["request_id"] for saga in body["sagas"])

    assert await seen({}) == ["o-1"]
    assert await seen({"Authorization": "Bearer wrong"}) == ["o-1"]
    assert await seen({"X-API-Key": "pay-token"}) == ["o-1", "p-1", "x-1"]
    assert (await client.get("/timeline/api/sagas/p-1")).status_code == 404
    found = await client.get("/timeline/api/sagas/p-1", headers={"X-API-Key": "pay-token"})
    assert found.status_code == 200
    assert (await client.get("/timeline")).status_code == 200
