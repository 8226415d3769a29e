"""Composition root: settings -> adapters -> module facades -> subscriptions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tipwise import events, migrations
from tipwise.advice import DEFAULT_LIBRARY, AdviceFacade, load_library
from tipwise.auth import AuthFacade, AuthSettings, OidcProviders, OidcSettings
from tipwise.events import EmbeddedBus, EventsPersonalData, Worker
from tipwise.events.jetstream import NatsBus, NatsSettings
from tipwise.integrations import (
    ConsentWatcher,
    FeedReader,
    IntegrationsFacade,
    IntegrationsPersonalData,
    IntegrationsSettings,
    Vault,
)
from tipwise.kernel.blas import BlasThreads
from tipwise.kernel.clock import Clock, SystemClock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.errors import ConfigurationError
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics
from tipwise.ml.pipelines import (
    EvaluationReport,
    Learner,
    LearnerPersonalData,
    LearnerSettings,
    current_live_policy,
    evaluate,
)
from tipwise.ml.serving import (
    HttpScorer,
    MlflowSettings,
    ModelRegistry,
    PolicyRegistry,
    PolicySettings,
    open_model_registry,
)
from tipwise.privacy import Privacy, Retention, RetentionSettings
from tipwise.profile import ProfileFacade, ProfilePersonalData
from tipwise.recommender import FEATURE_SPEC, RecommenderFacade, RecommenderPersonalData, RecommenderSettings
from tipwise.recommender.facade import random_seed
from tipwise.settings import Settings

log = get_logger(__name__)

# What the background worker of this process does: everything (the embedded default), or one part
# of a scaled deployment: the outbox relay, or the learner's consumer and periodic jobs.
Role = Literal["all", "relay", "learner"]
# How often the calendar syncer looks for feeds that are due.
SYNC_POLL_SECONDS = 5.0
# In one process on the embedded bus, the worker's rounds share the GIL and SQLite's write lock
# with the requests: under sustained load they take at most this share of the worker's time, so
# each round carries more events (`tipwise bench http`). A reaction then waits at most
# `EMBEDDED_MAX_PAUSE` more before the learner sees it.
EMBEDDED_DUTY = 0.25
EMBEDDED_MAX_PAUSE = 0.25


@dataclass(frozen=True, kw_only=True)
class Container:
    """Everything the app, the CLI and the tests wire together."""

    settings: Settings
    clock: Clock
    db: Database
    metrics: Metrics
    bus: EmbeddedBus | NatsBus
    worker: Worker
    # Reads the connected calendar feeds in a thread of its own, so a slow feed server never
    # holds up the relay or the learner; None in a relay-only process.
    syncer: Worker | None
    advice: AdviceFacade
    auth: AuthFacade
    profile: ProfileFacade
    integrations: IntegrationsFacade
    registry: PolicyRegistry
    learner: Learner
    recommender: RecommenderFacade
    privacy: Privacy
    retention: Retention
    secret_key: str

    def evaluate(self, *, since: datetime | None = None) -> EvaluationReport:
        """Evaluate the live policy and every shadow on the decision log; ValueError when it is too short."""
        return evaluate(
            self.recommender,
            rewards=self.learner.reward_map,
            now=self.clock.now(),
            since=since,
            live=self.registry.live,
        )

    def bus_status(self) -> dict[str, object]:
        if isinstance(self.bus, NatsBus):
            return self.bus.status()
        return {
            "kind": "embedded (the event log in the database)",
            "connected": None,
            "outbox_backlog": self.bus.outbox_backlog(),
            # A failing event stops its consumer and is retried until it succeeds.
            "dead_letters": None,
        }

    def embedded_log(self) -> EmbeddedBus:
        """The event log in the database; ConfigurationError when events travel on NATS."""
        if not isinstance(self.bus, EmbeddedBus):
            raise ConfigurationError(
                "this reads the embedded event log, and TIPWISE_EVENT_BUS points at NATS; "
                "the JetStream streams hold the log there"
            )
        return self.bus

    def start_workers(self) -> None:
        """Start the background threads: the worker, and the calendar syncer where this process has one."""
        self.worker.start()
        if self.syncer is not None:
            self.syncer.start()

    def stop_workers(self) -> None:
        if self.syncer is not None:
            self.syncer.stop()
        self.worker.stop()

    def close(self) -> None:
        self.stop_workers()
        if isinstance(self.bus, NatsBus):
            self.bus.close()
        self.db.dispose()


def model_registry(settings: Settings, mlflow_settings: MlflowSettings | None = None) -> ModelRegistry:
    """Return the model registry of `TIPWISE_MODEL_REGISTRY`; ConfigurationError when it is unusable."""
    try:
        return open_model_registry(
            kind=settings.model_registry, models_dir=settings.models_dir, mlflow=mlflow_settings or MlflowSettings()
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc


def build(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    seeds: Callable[[], int] = random_seed,
    auth_settings: AuthSettings | None = None,
    oidc_settings: OidcSettings | None = None,
    policy_settings: PolicySettings | None = None,
    recommender_settings: RecommenderSettings | None = None,
    learner_settings: LearnerSettings | None = None,
    retention_settings: RetentionSettings | None = None,
    mlflow_settings: MlflowSettings | None = None,
    models: ModelRegistry | None = None,
    integrations_settings: IntegrationsSettings | None = None,
    role: Role = "all",
) -> Container:
    """Wire the embedded default; refuses to start on a database schema that is behind.

    `models` replaces the model registry `settings` choose (tests hand in one that fails).
    """
    settings = settings or Settings()
    clock = clock or SystemClock()
    auth_settings = auth_settings or AuthSettings()
    policy_settings = policy_settings or PolicySettings()

    db = Database.connect(settings.sqlalchemy_url)
    current, heads = migrations.pending(db)
    if current != heads:
        db.dispose()
        raise ConfigurationError(
            f"the database schema is behind (at {sorted(current) or 'nothing'}, code expects {sorted(heads)}); "
            "run `tipwise migrate` first"
        )
    metrics = Metrics()
    advice = AdviceFacade.seed_and_load(
        db=db, library=load_library(settings.advice_library or DEFAULT_LIBRARY), clock=clock
    )
    secret_key = settings.resolved_secret_key()
    auth = AuthFacade.create(
        db=db,
        settings=auth_settings,
        secret_key=secret_key,
        clock=clock,
        oidc=OidcProviders.from_settings(oidc_settings or OidcSettings(), clock=clock),
    )
    profile = ProfileFacade(db=db, clock=clock)

    def observe_feedback_latency(learned_until: datetime) -> None:
        metrics.feedback_to_decision.observe(max((clock.now() - learned_until).total_seconds(), 0.0))

    live = policy_settings.live
    promoted = current_live_policy(db)
    if promoted is not None and promoted in policy_settings.specs():
        live = promoted
    elif promoted is not None:
        log.warning("promotion_ignored", policy=promoted, reason="not among the configured policies", live=live)
    try:
        registry = PolicyRegistry(
            specs=policy_settings.specs(),
            live=live,
            features=FEATURE_SPEC,
            on_first_use=observe_feedback_latency,
        )
    except ValueError as exc:
        raise ConfigurationError(f"TIPWISE_POLICY_LIVE: {exc}") from exc
    learner_settings = learner_settings or LearnerSettings()
    retention_settings = retention_settings or RetentionSettings()
    if retention_settings.decision_window <= learner_settings.reward_map().wait:
        db.dispose()
        # A decision deleted before its reward settled would never be learned from.
        raise ConfigurationError(
            "TIPWISE_RETENTION_DECISION_DAYS must be longer than the learner's reward wait "
            f"({learner_settings.reward_wait_hours:g} hours)"
        )

    if models is None:
        try:
            models = model_registry(settings, mlflow_settings)
        except ConfigurationError:
            db.dispose()
            raise

    bus: EmbeddedBus | NatsBus
    if settings.uses_nats:
        bus = NatsBus(
            settings=NatsSettings(
                url=settings.event_bus, prefix=settings.nats_prefix, batch_size=settings.nats_batch_size
            ),
            db=db,
            clock=clock,
            metrics=metrics,
        )
    else:
        bus = EmbeddedBus(db=db, clock=clock, metrics=metrics)

    def learner_history(session: WriteSession) -> Iterable[events.Event]:
        # The order the learner applied events in: the log's, or on NATS the outbox's (the relay's).
        if isinstance(bus, EmbeddedBus):
            return bus.applied_by(session, Learner.name)
        return events.applied_history(session, Learner.name, source="outbox", metrics=metrics)

    worker = Worker(
        bus=bus,
        relay=role in ("all", "relay"),
        dispatch=role in ("all", "learner"),
        # A NATS dispatch waits for events itself; a relay process polls the outbox.
        interval=0.0 if settings.uses_nats and role == "learner" else 0.05 if role == "relay" else 1.0,
        duty=EMBEDDED_DUTY if role == "all" and isinstance(bus, EmbeddedBus) else None,
        max_pause=EMBEDDED_MAX_PAUSE,
    )
    learner = Learner(
        db=db,
        registry=registry,
        rewards=learner_settings.reward_map(),
        clock=clock,
        metrics=metrics,
        models=models,
        cadence=learner_settings.cadence(),
        history=learner_history,
        blas=BlasThreads(learner_settings.blas_threads),
    )
    bus.subscribe(learner)
    integrations_settings = integrations_settings or IntegrationsSettings()
    integrations = IntegrationsFacade(
        db=db,
        clock=clock,
        consent=profile,
        zone_of=lambda user_id: profile.preferences(user_id=user_id).zone,
        vault=Vault(secret_key=secret_key),
        reader=FeedReader(
            timeout=integrations_settings.fetch_timeout_seconds,
            max_bytes=integrations_settings.max_feed_bytes,
            allow_private_addresses=integrations_settings.allow_private_addresses,
        ),
        settings=integrations_settings,
        on_commit=worker.wake,
    )
    bus.subscribe(ConsentWatcher())
    syncer = None
    if role != "relay":
        # No relay or dispatch: this thread only runs the sync job, every few seconds.
        syncer = Worker(bus=bus, relay=False, dispatch=False, interval=SYNC_POLL_SECONDS)
        syncer.add_job(integrations.sync_due)

    def report_lag() -> None:
        lag = bus.lag(learner.name)
        metrics.learner_lag_events.set(lag.events)
        metrics.learner_lag_seconds.set((clock.now() - lag.oldest).total_seconds() if lag.oldest else 0.0)

    if role != "relay":
        worker.add_job(learner.expire)
        worker.add_job(learner.snapshot_if_due)
        worker.add_job(report_lag)
        worker.add_job(auth.purge)
    retention = Retention(db=db, clock=clock, settings=retention_settings)
    if role in ("all", "learner"):
        worker.add_job(retention)

    recommender = RecommenderFacade(
        db=db,
        advice=advice,
        profile=profile,
        scorer=HttpScorer(settings.scorer_url) if settings.scorer_url else registry,
        clock=clock,
        metrics=metrics,
        settings=recommender_settings or RecommenderSettings(),
        accounts=auth,
        on_commit=worker.wake,
        seeds=seeds,
        calendar=integrations,
    )
    privacy = Privacy(
        db=db,
        clock=clock,
        ports=[
            auth.personal_data(),
            ProfilePersonalData(),
            IntegrationsPersonalData(),
            RecommenderPersonalData(),
            LearnerPersonalData(),
            EventsPersonalData(),
        ],
        on_commit=worker.wake,
    )
    return Container(
        settings=settings,
        clock=clock,
        db=db,
        metrics=metrics,
        bus=bus,
        worker=worker,
        syncer=syncer,
        advice=advice,
        auth=auth,
        profile=profile,
        integrations=integrations,
        registry=registry,
        learner=learner,
        recommender=recommender,
        privacy=privacy,
        retention=retention,
        secret_key=secret_key,
    )
