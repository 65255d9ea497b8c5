"""Prometheus metrics of one CSE process (its own registry, so several apps can live in a test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "m2m_requests",
            "oneM2M requests handled, by operation, resource type and RSC",
            ["binding", "op", "ty", "rsc"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "m2m_request_duration_seconds",
            "time to handle a oneM2M request",
            ["binding", "op"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.notifications = Gauge(
            "m2m_notifications",
            "notifications by outcome since start",
            ["outcome"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "m2m_requests_in_flight", "requests being handled now", registry=self.registry
        )
        self.ready = Gauge(
            "m2m_ready", "1 when this process takes new work", registry=self.registry
        )

    def observe(self, binding: str, op: str, ty: str, rsc: int, seconds: float) -> None:
        self.requests.labels(binding, op, ty, str(rsc)).inc()
        self.latency.labels(binding, op).observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
