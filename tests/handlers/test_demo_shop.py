"""The place-order demo's payments and shipments services over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handlers.demo.services import DemoHttpServices
from handlers.demo.shop import DECLINED_CARD


@pytest.fixture
def services() -> Iterator[DemoHttpServices]:
    with DemoHttpServices() as running:
        yield running


def post(url: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(url, json=body, headers=headers, timeout=10)


def test_a_repeated_charge_returns_the_first_and_charges_once(
    services: DemoHttpServices,
) -> None:
    url = services.servers["payments"].url + "/charges"
    body = {"amount": 10.5, "card": "4242", "reservation_id": "res-1"}

    first = post(url, body, key="r-1:charge")
    again = post(url, body, key="r-1:charge")
    other = post(url, body, key="r-2:charge")

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert other.json()["id"] != first.json()["id"]
    assert services.payments.ledger == [
        ("charged", first.json()["id"], 10.5),
        ("charged", other.json()["id"], 10.5),
    ]


def test_a_declined_card_is_a_402_and_charges_nothing(services: DemoHttpServices) -> None:
    response = post(
        services.servers["payments"].url + "/charges",
        {"amount": 5, "card": DECLINED_CARD, "reservation_id": "res-1"},
        key="r-3:charge",
    )

    assert response.status_code == 402
    assert services.payments.ledger == []


def test_a_refund_happens_once_and_an_unknown_refund_succeeds(
    services: DemoHttpServices,
) -> None:
    base = services.servers["payments"].url
    charge = post(base + "/charges", {"amount": 7, "card": "4242"}, key="r-4:charge").json()

    refunds = [post(f"{base}/charges/{charge['id']}/refund").json() for _ in range(2)]
    unknown = post(f"{base}/charges/ch-nope/refund")

    assert refunds == [{"id": charge["id"], "refunded": True}] * 2
    assert unknown.status_code == 200
    assert [event for event, _, _ in services.payments.ledger] == ["charged", "refunded"]


def test_charges_need_an_idempotency_key(services: DemoHttpServices) -> None:
    response = post(services.servers["payments"].url + "/charges", {"amount": 1, "card": "4242"})

    assert response.status_code == 400


def test_shipments_outage_answers_503_with_retry_after_then_recovers(
    services: DemoHttpServices,
) -> None:
    url = services.servers["shipments"].url + "/shipments"
    body = {"order_id": "o-1", "address": "here", "payment_id": "ch-1"}
    services.shipments.down = True
    down = post(url, body, key="r-5:ship")
    services.shipments.down = False
    first = post(url, body, key="r-5:ship")
    again = post(url, body, key="r-5:ship")

    assert (down.status_code, down.headers["retry-after"]) == (503, "0")
    assert first.status_code == 200
    assert first.json() == again.json()
    assert first.json()["tracking_number"].startswith("TRK-")
    assert services.shipments.attempts == 3
    assert len(services.shipments.booked) == 1
