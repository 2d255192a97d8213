"""The server in Kafka mode (a real Tansu broker, no workers): appends carry the key's principal,
refusals append nothing, and readiness and projection lag come from Kafka's offsets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.http.app import create_app
from spectron.http.keys import create_key
from spectron.log import decode_record
from spectron.service import MemoryService
from tests.log_support import opened as opened_records

pytestmark = pytest.mark.kafka


@pytest.fixture
async def kafka_service(
    kafka_broker: str, database: str, hashing: HashingEmbedder
) -> AsyncIterator[MemoryService]:
    """A MemoryService appending to a fresh topic; projection is left to (absent) workers."""
    settings = Settings(
        database_url=database,
        kafka_bootstrap=kafka_broker,
        topic=f"http-{uuid.uuid4().hex[:8]}",
        partitions=2,
        run_projectors=False,
    )
    service = await MemoryService.open(settings, embedder=hashing)
    try:
        yield service
    finally:
        await service.close()


async def test_http_on_kafka(kafka_service: MemoryService) -> None:
    app = create_app(kafka_service)
    async with app.router.lifespan_context(app):
        async with kafka_service.pool.connection() as conn:
            _, secret = await create_key(conn, "agent:k1", {"org": "acme"}, "read,write")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://spectron.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as client:
            assert (await client.get("/readyz")).status_code == 200
            opened = await client.post("/v1/sessions", json={"scope": {"org": "acme", "p": "x"}})
            base = f"/v1/sessions/{opened.json()['session_id']}"
            refused = await client.post(
                f"{base}/remember", json={"content": "x", "principal": "agent:boss"}
            )
            assert refused.status_code == 422
            assert sum((await kafka_service.log.end_offsets()).values()) == 0
            written = await client.post(f"{base}/remember", json={"content": "On Kafka."})
            assert written.status_code == 201, written.text
            metrics = (await client.get("/metrics")).text
            # what the console shows, on Kafka: lag from the topic's offsets, the chain unlinked
            # (no `spectron worker` runs its chainer), the audit read from the topic itself
            status = (await client.get("/v1/status")).json()
            [lagging] = [p for p in status["partitions"] if p["lag"]]
            assert lagging["partition"] == written.json()["partition"] and lagging["log_end"] == 1
            verification = (await client.get("/v1/log/verification")).json()
            assert verification["verified"] and verification["breaks"] == []
            assert verification["unchained"] == 1 and set(verification["heads"]) == {"0", "1"}
            audit = (await client.get(f"{base}/audit")).json()
            assert [r["event_id"] for r in audit["items"]] == [written.json()["id"]]
            assert audit["items"][0]["principal"] == "agent:k1"

    result = written.json()
    [record] = await opened_records(
        kafka_service.pool,
        await kafka_service.log.read(result["partition"], result["offset"], limit=1),
    )
    event = decode_record(record).event
    assert str(event.event_id) == result["id"]
    assert event.principal == "agent:k1"
    lag = f'spectron_projection_lag_events{{partition="{result["partition"]}"}} 1.0'
    assert lag in metrics, "nothing projects without workers: the lag shows it"
