"""Prometheus instruments, one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The instruments Tipwise exports on `/metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_request_duration = Histogram(
            "tipwise_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "tipwise_decisions_total", "Tip decisions made, by live policy.", ["policy"], registry=self.registry
        )
        self.empty_decisions = Counter(
            "tipwise_empty_decisions_total", "Decision requests with no eligible tip.", registry=self.registry
        )
        self.rewards = Counter(
            "tipwise_rewards_total",
            "Rewards applied by the learner, by source (reaction or timeout).",
            ["source"],
            registry=self.registry,
        )
        self.late_rewards = Counter(
            "tipwise_late_rewards_total",
            "Reactions that arrived after the reward wait had already applied the default reward.",
            registry=self.registry,
        )
        self.snapshot_failures = Counter(
            "tipwise_model_snapshot_failures_total",
            "Snapshots the learner could not publish to the model registry (retried after the snapshot interval).",
            registry=self.registry,
        )
        self.learner_lag_events = Gauge(
            "tipwise_learner_lag_events",
            "Events on the log the learner has not applied yet.",
            registry=self.registry,
        )
        self.learner_lag_seconds = Gauge(
            "tipwise_learner_lag_seconds",
            "Age of the oldest event on the log the learner has not applied yet.",
            registry=self.registry,
        )
        self.feedback_to_decision = Histogram(
            "tipwise_feedback_to_decision_seconds",
            "Time from a reaction to the first decision made with a model that learned from it.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            "tipwise_events_dead_lettered_total",
            "Events a consumer failed to apply too many times, moved to the dead-letter subject.",
            ["consumer"],
            registry=self.registry,
        )
        self.events_redelivered = Counter(
            "tipwise_events_redelivered_total",
            "Events handed back to the bus for a later retry after a consumer failed on them.",
            ["consumer"],
            registry=self.registry,
        )
        self.events_shredded_skipped = Counter(
            "tipwise_events_shredded_skipped_total",
            "Events about an erased person, whose data key is gone, skipped by a reader or a consumer.",
            ["reader"],
            registry=self.registry,
        )
        self.model_rebuild_seconds = Histogram(
            "tipwise_model_rebuild_seconds",
            "Time to rebuild every model from the log after a person was erased.",
            buckets=(0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "tipwise_outbox_backlog_events",
            "Committed events waiting in the outbox to be published on the bus.",
            registry=self.registry,
        )
        self.model_version = Gauge(
            "tipwise_model_version", "Version of the live model in use.", ["policy"], registry=self.registry
        )

    def render(self) -> bytes:
        """Return the exposition text for every instrument."""
        return generate_latest(self.registry)
