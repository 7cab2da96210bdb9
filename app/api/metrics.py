"""Prometheus metrics read from the service's counters at scrape time (plus a firing-delay histogram)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


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
        snap = self.service.snapshot()
        degraded = GaugeMetricFamily("fleetgen_degraded", "1 while a stream's latest window failed or it is "
                                     "more than one interval behind (health status degraded)")
        degraded.add_metric([], 1 if snap.status == "degraded" else 0)
        windows = CounterMetricFamily("fleetgen_windows_off_cadence", "Windows published late (over 1 s after "
                                      "their window closed) or in catch-up, since start", labels=["stream", "kind"])
        for stream, stats in streams.items():
            windows.add_metric([stream, "late"], stats["late_windows"])
            windows.add_metric([stream, "catch_up"], stats["catch_up_windows"])
        emulated = GaugeMetricFamily("fleetgen_emulated_mode", "1 in emulated mode, 0 in production")
        emulated.add_metric([], 1 if self.service.config.emulated_mode.enabled else 0)
        yield from (batches, records, defects, paused, degraded, windows, emulated)


class Metrics:
    def __init__(self, service):
        self.registry = CollectorRegistry()
        self.registry.register(ServiceCollector(service))
        self.firing_delay = Histogram("fleetgen_firing_delay_seconds", "Batch start minus its window boundary",
                                      ["stream"], buckets=DELAY_BUCKETS, registry=self.registry)
        self.lateness = Histogram("fleetgen_publish_lateness_seconds", "Publish time minus the end of the "
                                  "batch's window", ["stream", "cadence"], buckets=LATENESS_BUCKETS,
                                  registry=self.registry)
        for stream in ("companies", "events"):
            self.firing_delay.labels(stream)  # export empty buckets before the first batch
            for cadence in ("on_cadence", "catch_up"):
                self.lateness.labels(stream, cadence)
        service.broadcaster.add_listener(self._observe)

    def _observe(self, kind: str, data: dict) -> None:
        if kind == "batch" and data.get("firing_delay_ms") is not None:
            self.firing_delay.labels(data["stream"]).observe(data["firing_delay_ms"] / 1000)
        if kind == "batch" and data.get("lateness_ms") is not None:
            cadence = "catch_up" if data.get("catch_up") else "on_cadence"
            self.lateness.labels(data["stream"], cadence).observe(data["lateness_ms"] / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
