"""Prometheus metrics read from the service's counters at scrape time (plus a firing-delay histogram)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceCollector:
    def __init__(self, service):
        self.service = service

    def collect(self):
        streams = self.service.stats.snapshot()
        batches = CounterMetricFamily("fleetgen_batches", "Windows accounted for, by stream and status",
                                      labels=["stream", "status"])
        records = CounterMetricFamily("fleetgen_records", "Records written, by stream", labels=["stream"])
        defects = CounterMetricFamily("fleetgen_defects", "Injected defects, by stream and type",
                                      labels=["stream", "type"])
        for stream, stats in streams.items():
            batches.add_metric([stream, "committed"], stats["total_batches"])
            batches.add_metric([stream, "failed"], stats["failed_batches"])
            batches.add_metric([stream, "skipped"], stats["skipped_windows"])
            records.add_metric([stream], stats["total_records"])
        for stream, by_type in self.service.stats.defects_by_type().items():
            for kind, count in by_type.items():
                defects.add_metric([stream, kind], count)
        paused = GaugeMetricFamily("fleetgen_paused", "1 while generation is paused")
        paused.add_metric([], 1 if self.service.lifecycle.paused else 0)
        emulated = GaugeMetricFamily("fleetgen_emulated_mode", "1 in emulated mode, 0 in production")
        emulated.add_metric([], 1 if self.service.config.emulated_mode.enabled else 0)
        yield from (batches, records, defects, paused, emulated)


class Metrics:
    def __init__(self, service):
        self.registry = CollectorRegistry()
        self.registry.register(ServiceCollector(service))
        self.firing_delay = Histogram("fleetgen_firing_delay_seconds", "Batch start minus its window boundary",
                                      ["stream"], buckets=DELAY_BUCKETS, registry=self.registry)
        for stream in ("companies", "events"):
            self.firing_delay.labels(stream)  # export empty buckets before the first batch
        service.broadcaster.add_listener(self._observe)

    def _observe(self, kind: str, data: dict) -> None:
        if kind == "batch" and data.get("firing_delay_ms") is not None:
            self.firing_delay.labels(data["stream"]).observe(data["firing_delay_ms"] / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
