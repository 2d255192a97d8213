"""Prometheus metrics: request latency per route, append latency, and log/projection lag per partition."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spectron.positions import all_enrichment_positions, projection_positions
from spectron.service import MemoryService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# a request's method label: any other name a client sends is "other" (h11 accepts any token, and
# one label set per name sent would grow the metrics without bound)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "spectron_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=_FAST,
        )
        self.appends = Histogram(
            "spectron_append_duration_seconds",
            "Time for an API operation to validate and have the log acknowledge its event.",
            ["operation"],
            registry=self.registry,
            buckets=_FAST,
        )
        self.log_end = Gauge(
            "spectron_log_end_offset",
            "Offset after the last acknowledged record, per partition.",
            ["partition"],
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "spectron_projection_lag_events",
            "Records appended but not yet projected (consumer 'projections'), per partition.",
            ["partition"],
            registry=self.registry,
        )
        self.enrichment_lag = Gauge(
            "spectron_enrichment_lag_events",
            "Records not yet seen by an enrichment pass (embedded log), per consumer and partition.",
            ["consumer", "partition"],
            registry=self.registry,
        )

    @contextmanager
    def append(self, operation: str) -> Iterator[None]:
        """Time one appending operation."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.appends.labels(operation).observe(time.perf_counter() - started)

    async def render(self, service: MemoryService) -> bytes:
        """Refresh the lag gauges from the log and the positions tables, then expose everything."""
        ends = await service.log.end_offsets()
        async with service.pool.connection() as conn:
            projected = await projection_positions(conn)
            enriched = await all_enrichment_positions(conn)
        for partition, end in ends.items():
            self.log_end.labels(str(partition)).set(end)
            self.projection_lag.labels(str(partition)).set(end - projected.get(partition, 0))
        for (consumer, partition), done in enriched.items():
            lag = ends.get(partition, done) - done
            self.enrichment_lag.labels(consumer, str(partition)).set(lag)
        return generate_latest(self.registry)


class RequestTimer:
    """ASGI middleware: observe each request's latency under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request and record method, route template and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.metrics.requests.labels(method, template, str(status)).observe(
                time.perf_counter() - started
            )
