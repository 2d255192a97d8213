"""Probes and metrics for operators: liveness, readiness, Prometheus. No API key needed."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response

from spectron.errors import ServerUnavailable
from spectron.http.bodies import Health
from spectron.http.deps import AppMetrics, Service
from spectron.http.metrics import CONTENT_TYPE
from spectron.http.routing import SpectronRoute

log = logging.getLogger(__name__)

router = APIRouter(route_class=SpectronRoute, tags=["operations"])


@router.get("/healthz")
async def healthz(service: Service) -> Health:
    """Liveness: 503 only in a state the process cannot leave by itself (restart it)."""
    watch = service.watch
    if not watch.live:
        why = watch.reason or "its database watch stopped"
        raise ServerUnavailable(f"the process cannot recover by itself: {why}")
    return Health(status="ok", detail="" if watch.state == "up" else str(watch.unavailable()))


@router.get("/readyz")
async def readyz(service: Service) -> Health:
    """Readiness: the database answers and the log reports its end offsets (2 s bound)."""
    try:
        async with asyncio.timeout(2.0):
            async with service.pool.connection() as conn:
                await conn.execute("SELECT 1")
            await service.log.end_offsets()
    except Exception as exc:  # whatever the cause, the answer is 'not ready'
        # unauthenticated: the cause's text (hosts, users, socket paths) goes to the log only
        log.warning("not ready: %s: %s", type(exc).__name__, exc)
        raise ServerUnavailable(f"not ready: {type(exc).__name__} (see the server log)") from exc
    return Health(status="ok")


@router.get("/metrics", response_class=Response)
async def prometheus(service: Service, metrics: AppMetrics) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(await metrics.render(service), media_type=CONTENT_TYPE)
