"""``GET /metrics`` for Prometheus, and the HTTP latency histogram behind it.

Two kinds of figures:
- cluster-wide, read from the database and the broker at scrape time (``jobs.stats``): runs and
  job items by state, run / node / item duration histograms, model loads, schedule fires, live workers,
  queue depth. Every web replica reports the same values, so scrape one replica (or use ``max``).
  Reads are cached for ``STACKYARD_METRICS_CACHE_SECONDS``.
- per web process: ``stackyard_http_request_duration_seconds`` by method, route template and status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs import stats as job_stats
from jobs.models import FireState, ItemState, JobItem, ScheduleFire
from runs import stats, workers
from runs.models import Run, RunState
from stackyard.settings import get_settings
from store.db import session_scope

log = logging.getLogger("stackyard.metrics")
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _histogram(name: str, doc: str, label: str, values: dict[str, stats.Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, hist in sorted(values.items()):
        buckets = [(repr(bound), count) for bound, count in hist.buckets] + [("+Inf", hist.count)]
        family.add_metric([value], buckets, sum_value=hist.total)
    return family


def _gauge(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value, count in sorted(values.items()):
        family.add_metric([value], count)
    return family


def _store_metrics() -> list[Metric]:
    with session_scope() as session:
        loads = CounterMetricFamily("stackyard_model_loads", "Models loaded by workers (summed over runs)")
        loads.add_metric([], stats.model_loads(session))
        return [
            _gauge("stackyard_runs", "Runs by state", "state", stats.counts_by_state(session, Run, RunState)),
            _gauge("stackyard_job_items", "Batch job items by state", "state",
                   stats.counts_by_state(session, JobItem, ItemState)),
            _gauge("stackyard_schedule_fires", "Schedule ticks by outcome", "state",
                   stats.counts_by_state(session, ScheduleFire, FireState)),
            _gauge("stackyard_workers", "Live worker processes per queue they consume", "queue",
                   workers.live_workers(session)),
            _histogram("stackyard_run_duration_seconds", "Run time from claim to finish", "state",
                       stats.run_durations(session)),
            _histogram("stackyard_node_duration_seconds", "Component run time inside runs", "component",
                       stats.node_durations(session)),
            _histogram("stackyard_job_item_duration_seconds", "Batch job item run time", "state",
                       job_stats.item_durations(session)),
            loads,
        ]


class ClusterCollector(Collector):
    """Reads the database and the broker at most once per ``metrics_cache_seconds``."""

    def __init__(self) -> None:
        self._cached: list[Metric] = []
        self._read_at = float("-inf")

    def refresh(self) -> None:
        if time.monotonic() - self._read_at < get_settings().metrics_cache_seconds:
            return
        found: list[Metric] = []
        for source, read in (("database", _store_metrics), ("broker", self._broker_metrics)):
            up = GaugeMetricFamily(f"stackyard_{source}_up", f"1 when the {source} answered this scrape")
            try:
                found.extend(read())
                up.add_metric([], 1)
            except Exception as exc:  # noqa: BLE001 - a scrape reports an outage instead of failing
                log.warning("metrics: %s unreachable: %s: %s", source, type(exc).__name__, exc)
                up.add_metric([], 0)
            found.append(up)
        self._cached, self._read_at = found, time.monotonic()

    @staticmethod
    def _broker_metrics() -> list[Metric]:
        from worker.app import queue_depths

        return [_gauge("stackyard_queue_depth", "Messages waiting in each broker queue", "queue", queue_depths())]

    def collect(self) -> Iterator[Metric]:
        yield from self._cached

    def describe(self) -> Iterable[Metric]:
        return []


class RequestTimer:
    """ASGI middleware: observes each HTTP request's duration, labelled by its route template (bounded)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            self.histogram.labels(scope["method"], route, str(status[0])).observe(time.perf_counter() - started)


def install(app: FastAPI) -> None:
    registry = CollectorRegistry(auto_describe=False)
    cluster = ClusterCollector()
    registry.register(cluster)
    requests = Histogram("stackyard_http_request_duration_seconds", "HTTP request latency in this web process",
                         ["method", "route", "status"], registry=registry, buckets=HTTP_BUCKETS)
    app.add_middleware(RequestTimer, histogram=requests)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await run_in_threadpool(cluster.refresh)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

