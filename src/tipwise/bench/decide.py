"""`tipwise bench decide`: decision latency, a whole decision with persistence, and learner throughput.

Every figure comes from the same run on the same machine, so ratios between
them are meaningful even when the machine is noisy.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import numpy as np
import typer

from tipwise.bench.common import Result, console, latency_result, print_table, progress, time_calls, write_json
from tipwise.ml.serving import (
    CandidateSet,
    EpsilonGreedySpec,
    Features,
    FeatureSpec,
    LinUCBSpec,
    LoggedReward,
    Policy,
    PolicyRegistry,
    PolicySpec,
    UniformSpec,
    build_policy,
    learn_together,
)

BENCH_PASSWORD = "bench password"  # noqa: S105 - throwaway accounts in a temp database
if TYPE_CHECKING:
    from uuid import UUID

    from tipwise.bootstrap import Container
    from tipwise.events import Event
    from tipwise.kernel.clock import FakeClock
    from tipwise.ml.pipelines import RewardMap
    from tipwise.recommender.domain.candidates import PastShow
    from tipwise.settings import Settings

SHARED_DIM = 32
ACTION_DIM = 8
WARM_EXAMPLES = 1000
# The parts of the benchmark `--only` can choose.
SECTIONS = ("pick", "decision", "learner")


def register(app: typer.Typer) -> None:
    app.command("decide")(decide)


def decide(
    iterations: Annotated[int, typer.Option(help="Timed calls per latency figure.")] = 3000,
    decisions: Annotated[int, typer.Option(help="Whole decisions (with persistence) to time, per group.")] = 1000,
    rewards: Annotated[int, typer.Option(help="Rewards on the log for the learner throughput figure.")] = 20000,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results here as JSON.")] = None,
    only: Annotated[
        str | None, typer.Option(help=f"Comma-separated sections to run: {', '.join(SECTIONS)} (default: all).")
    ] = None,
) -> None:
    """Time `pick` next to Vowpal Wabbit, a whole in-process decision, and the learner."""
    chosen = SECTIONS if only is None else tuple(name.strip() for name in only.split(",") if name.strip())
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}", param_hint="--only")
    results: list[Result] = []
    if "pick" in chosen:
        results += pick_latency(iterations=iterations)
        results += tips_latency(iterations=iterations)
    if "decision" in chosen:
        results += whole_decision(decisions=decisions)
    if "learner" in chosen:
        results += learner_throughput(rewards=rewards)
    print_table("tipwise bench decide", results)
    if json_path is not None:
        write_json(json_path, "decide", results)


# -- pick on a reference input ---------------------------------------------------


def reference_spec() -> FeatureSpec:
    """32 dense context features, 8 per action, and action x context crosses (VW's `-q sa`)."""
    action = tuple(f"a{j}" for j in range(ACTION_DIM))
    return FeatureSpec(
        name="bench.reference",
        shared=tuple(f"s{i}" for i in range(SHARED_DIM)),
        action=action,
        action_cross=action,
        normalize=True,
    )


def reference_input(rng: np.random.Generator, k: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    context = {f"s{i}": float(v) for i, v in enumerate(rng.normal(size=SHARED_DIM))}
    candidates = [{f"a{j}": float(v) for j, v in enumerate(rng.normal(size=ACTION_DIM))} for _ in range(k)]
    return context, candidates


def _pick_fresh(
    policy: Policy, context: Features, candidates: list[dict[str, float]], rng: np.random.Generator
) -> object:
    # A fresh list per call: the per-decision feature memo must not hide the featurization cost.
    return policy.pick(context=context, candidates=list(candidates), rng=rng)


def _pick_prepared(policy: Policy, context: Features, candidates: CandidateSet, rng: np.random.Generator) -> object:
    # A fresh context per call: the context changes with every decision, so its featurization is timed.
    return policy.pick(context=dict(context), candidates=candidates, rng=rng)


def _decide_fresh(registry: PolicyRegistry, context: Features, candidates: list[dict[str, float]]) -> object:
    return registry.decide(context=context, candidates=list(candidates), seed=11)


def _decide_prepared(registry: PolicyRegistry, context: Features, candidates: CandidateSet) -> object:
    return registry.decide(context=dict(context), candidates=candidates, seed=11)


def _warm(policy: Policy, rng: np.random.Generator) -> None:
    examples = []
    for _ in range(WARM_EXAMPLES):
        context, candidates = reference_input(rng, 1)
        examples.append(
            LoggedReward(shared=context, action=candidates[0], propensity=0.5, reward=float(rng.random() < 0.3))
        )
    policy.learn(examples)


def pick_latency(*, iterations: int) -> list[Result]:
    spec = reference_spec()
    policies: dict[str, PolicySpec] = {
        "uniform": UniformSpec(),
        "epsilon_greedy": EpsilonGreedySpec(),
        "linucb": LinUCBSpec(),
    }
    results = []
    with progress() as bar:
        task = bar.add_task("pick latency", total=2 * (len(policies) + 1))
        for k in (10, 100):
            rng = np.random.default_rng(k)
            context, candidates = reference_input(rng, k)
            # The candidates featurized once, as a caller keeps them between decisions.
            prepared = CandidateSet(spec, candidates)
            for name, policy_spec in policies.items():
                policy = build_policy(policy_spec, features=spec)
                _warm(policy, np.random.default_rng(1))
                pick_rng = np.random.default_rng(7)
                samples, seconds = time_calls(
                    partial(_pick_prepared, policy, context, prepared, pick_rng), iterations=iterations
                )
                results.append(latency_result(f"pick {name} k={k}", samples, seconds=seconds, k=k, dim=spec.dim))
                samples, seconds = time_calls(
                    partial(_pick_fresh, policy, context, candidates, pick_rng), iterations=iterations
                )
                results.append(
                    latency_result(f"pick {name} k={k} fresh dicts", samples, seconds=seconds, k=k, dim=spec.dim)
                )
                bar.advance(task)
            results.append(_vw_latency(context, candidates, iterations=iterations))
            bar.advance(task)
    return results


def _vw_latency(context: Features, candidates: list[dict[str, float]], *, iterations: int) -> Result:
    from vowpalwabbit import pyvw

    workspace = pyvw.Workspace("--cb_explore_adf --quiet -q sa --cb_type mtr --epsilon 0.05 --random_seed 1")
    rng = np.random.default_rng(1)
    shared_line = "shared |s " + " ".join(f"{n}:{v:.6f}" for n, v in context.items())
    for _ in range(WARM_EXAMPLES // 10):
        lines = [shared_line] + ["|a " + " ".join(f"{n}:{v:.6f}" for n, v in c.items()) for c in candidates]
        chosen = int(rng.integers(len(candidates)))
        lines[chosen + 1] = f"0:{-float(rng.random() < 0.3)}:{1 / len(candidates)} " + lines[chosen + 1]
        workspace.learn(lines)

    def predict() -> int:
        lines = [shared_line] + ["|a " + " ".join(f"{n}:{v:.6f}" for n, v in c.items()) for c in candidates]
        pmf = np.asarray(workspace.predict(lines), dtype=np.float64)
        return int(np.searchsorted(np.cumsum(pmf), rng.random() * pmf.sum(), side="right"))

    samples, seconds = time_calls(predict, iterations=iterations)
    workspace.finish()
    return latency_result(f"vw predict+sample k={len(candidates)}", samples, seconds=seconds, k=len(candidates))


# -- the real tip features ---------------------------------------------------------


def tips_latency(*, iterations: int) -> list[Result]:
    """Pick over Tipwise's own features (all 90 tips and the first 10), live alone and with shadows."""
    from tipwise.advice import DEFAULT_LIBRARY, load_library
    from tipwise.ml.serving import PolicySettings
    from tipwise.profile import Purpose
    from tipwise.recommender import FEATURE_SPEC
    from tipwise.recommender.domain.features import FeatureAssembler

    tips = load_library(DEFAULT_LIBRARY).tips
    everything = frozenset(Purpose)
    settings = PolicySettings()
    registry = PolicyRegistry(specs=settings.specs(), live=settings.live, features=FEATURE_SPEC)
    local = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)
    results = []
    assembler = FeatureAssembler()
    for k in (10, len(tips)):
        # The features as the recommender makes them for every decision: its context and its candidate set
        # (rows kept per tip, plus this decision's personal and time-of-day rows).
        assemble = partial(
            assembler.assemble, local_now=local, history=history_for_bench(local), tips=tips[:k], purposes=everything
        )
        samples, seconds = time_calls(assemble, iterations=iterations)
        results.append(latency_result(f"tips assemble k={k}", samples, seconds=seconds, k=k))
        context = assemble()
        prepared = context.candidates
        if prepared is None:
            raise RuntimeError("the assembler prepared no candidate set")
        candidates = list(context.actions.values())
        live = registry.model(registry.live)
        rng = np.random.default_rng(3)
        for label, pick, decide in (
            (
                "",
                partial(_pick_prepared, live, context.shared, prepared, rng),
                partial(_decide_prepared, registry, context.shared, prepared),
            ),
            (
                " fresh dicts",
                partial(_pick_fresh, live, context.shared, candidates, rng),
                partial(_decide_fresh, registry, context.shared, candidates),
            ),
        ):
            samples, seconds = time_calls(pick, iterations=iterations)
            results.append(latency_result(f"tips pick {registry.live} k={k}{label}", samples, seconds=seconds, k=k))
            samples, seconds = time_calls(decide, iterations=iterations)
            results.append(latency_result(f"tips live+shadows k={k}{label}", samples, seconds=seconds, k=k))
    return results


def history_for_bench(local: datetime) -> list[PastShow]:
    """A person's recent shows in every category, some with reactions: the personalized path."""
    from tipwise.advice import Category
    from tipwise.recommender.domain.candidates import PastShow
    from tipwise.recommender.domain.reactions import Reaction

    reactions = (*Reaction, None)
    shows = []
    for n in range(30):
        decided = local - timedelta(hours=13 + n)
        reaction = reactions[n % len(reactions)]
        shows.append(
            PastShow(
                tip_id=f"bench-{n}",
                category=list(Category)[n % len(Category)],
                decided_at=decided,
                reaction=reaction,
                reacted_at=decided + timedelta(minutes=5) if reaction else None,
            )
        )
    return shows


def _bench_settings(data_dir: Path) -> Settings:
    from tipwise.settings import Settings

    return Settings(data_dir=data_dir, secret_key=secrets.token_urlsafe(32), embedded_worker=False)


# -- a whole decision ----------------------------------------------------------------


# A work calendar for the benchmark: a 30-minute meeting every two hours, every day.
BENCH_CALENDAR = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tipwise bench//EN\r\nBEGIN:VEVENT\r\nUID:bench\r\n"
    b"DTSTART;TZID=Europe/Berlin:20260301T080000\r\nDTEND;TZID=Europe/Berlin:20260301T083000\r\n"
    b"RRULE:FREQ=HOURLY;INTERVAL=2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
# The three kinds of people a decision is timed for, interleaved so they share the machine's noise.
DECISION_GROUPS = (
    "whole decision, no calendar consent (SQLite)",
    "whole decision, calendar consent, none connected (SQLite)",
    "whole decision, calendar connected (SQLite)",
)


@contextmanager
def _calendar_server() -> Iterator[str]:
    """Serve BENCH_CALENDAR on a free port of 127.0.0.1; yield its URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(BENCH_CALENDAR)))
            self.end_headers()
            self.wfile.write(BENCH_CALENDAR)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/calendar.ics"
    finally:
        server.shutdown()
        server.server_close()


def whole_decision(*, decisions: int) -> list[Result]:
    """Candidates, features, pick and the persisted TipInstance + outbox row, on SQLite, in process.

    Timed for three groups of accounts, interleaved: without the calendar-signals consent (no
    calendar read), with it but no calendar connected, and with a connected calendar (its busy
    times read for every decision). Everyone grants personalization: the personalized path.
    """
    from tipwise import migrations
    from tipwise.auth import AuthSettings
    from tipwise.bootstrap import build
    from tipwise.integrations import IntegrationsSettings
    from tipwise.kernel.clock import FakeClock
    from tipwise.kernel.db import Database
    from tipwise.profile import ConsentsPut, Purpose

    with tempfile.TemporaryDirectory(prefix="tipwise-bench-") as tmp, _calendar_server() as feed_url:
        settings = _bench_settings(Path(tmp))
        db = Database.connect(settings.sqlalchemy_url)
        migrations.upgrade(db)
        db.dispose()
        clock = FakeClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
        container = build(
            settings,
            clock=clock,
            auth_settings=AuthSettings(argon2_time_cost=1, argon2_memory_cost_kib=64),
            integrations_settings=IntegrationsSettings(allow_private_addresses=True),
        )
        try:
            users = [container.auth.register(email=f"b{i}@bench.test", password=BENCH_PASSWORD).id for i in range(51)]
            for n, user in enumerate(users):
                consents = ConsentsPut.every_purpose(granted=True)
                if n % 3 == 0:
                    consents.purposes[Purpose.CALENDAR_SIGNALS] = False
                container.profile.record_consents(user_id=user, decisions=consents)
                if n % 3 == 2:
                    container.integrations.add_calendar(user_id=user, url=feed_url)
            samples = {name: np.empty(decisions, dtype=np.int64) for name in DECISION_GROUPS}
            # The CPU time of the deciding thread: what the decision costs, whoever else shares the machine.
            cpu = {name: np.empty(decisions, dtype=np.int64) for name in DECISION_GROUPS}
            started = time.perf_counter()
            with progress() as bar:
                task = bar.add_task("whole decisions", total=decisions * len(DECISION_GROUPS))
                for n in range(decisions * len(DECISION_GROUPS)):
                    user = users[n % len(users)]
                    begin, begin_cpu = time.perf_counter_ns(), time.thread_time_ns()
                    container.recommender.next_tip(user_id=user)
                    samples[DECISION_GROUPS[n % 3]][n // 3] = time.perf_counter_ns() - begin
                    cpu[DECISION_GROUPS[n % 3]][n // 3] = time.thread_time_ns() - begin_cpu
                    if n % len(users) == len(users) - 1:
                        clock.advance(timedelta(minutes=20))
                    bar.advance(task)
            seconds = time.perf_counter() - started
            results = [latency_result(name, samples[name], seconds=seconds / 3) for name in DECISION_GROUPS]
            results += [latency_result(f"{name}, CPU time", cpu[name], seconds=seconds / 3) for name in DECISION_GROUPS]
            results += asyncio.run(_grouped_decisions(container, users, decisions=decisions, clock=clock))
            return results
        finally:
            container.close()


GROUP = 32


async def _grouped_decisions(
    container: Container, users: list[UUID], *, decisions: int, clock: FakeClock
) -> list[Result]:
    """Decisions asked `GROUP` at a time on one event loop (as the HTTP endpoint asks them): group commits."""
    latencies: list[int] = []

    async def one(user: UUID, begin: int) -> None:
        await container.recommender.next_tip_async(user_id=user)
        latencies.append(time.perf_counter_ns() - begin)

    started = time.perf_counter()
    for n in range(0, decisions, GROUP):
        clock.advance(timedelta(minutes=20))
        begin = time.perf_counter_ns()
        await asyncio.gather(*(one(users[(n + i) % len(users)], begin) for i in range(min(GROUP, decisions - n))))
    seconds = time.perf_counter() - started
    result = latency_result(f"whole decision, {GROUP} at a time (async, group commit)", latencies, seconds=seconds)
    result.extra["decisions_per_second"] = decisions / seconds
    return [result]


# -- learner throughput ----------------------------------------------------------------


def learner_throughput(*, rewards: int) -> list[Result]:
    """Rewards joined and learned per second from the event log: the learner, and a pure replay."""
    from tipwise import events, migrations
    from tipwise.auth import AuthSettings
    from tipwise.bench.logs import decisions_and_reactions
    from tipwise.bootstrap import build
    from tipwise.kernel.clock import FakeClock
    from tipwise.kernel.db import Database
    from tipwise.ml.pipelines import replay
    from tipwise.recommender import FEATURE_SPEC

    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="tipwise-bench-") as tmp:
        settings = _bench_settings(Path(tmp))
        db = Database.connect(settings.sqlalchemy_url)
        migrations.upgrade(db)
        db.dispose()
        container = build(
            settings, clock=FakeClock(now), auth_settings=AuthSettings(argon2_time_cost=1, argon2_memory_cost_kib=64)
        )
        try:
            written = list(decisions_and_reactions(rewards, now=now))
            with progress() as bar:
                task = bar.add_task("writing the log", total=rewards)
                for start in range(0, len(written), 2000):
                    with container.db.write() as session:
                        for event in written[start : start + 2000]:
                            events.publish(session, event)
                    container.bus.relay()
                    bar.advance(task, min(1000, rewards - start // 2))
            del written
            learner_seconds = _timed_as_a_process(container.worker.run_once)
            log = list(container.embedded_log().read())
            started = time.perf_counter()
            replay(log, specs=container.registry.specs, features=FEATURE_SPEC, rewards=container.learner.reward_map)
            replay_seconds = time.perf_counter() - started
            learn_seconds = _learn_only(log, container.registry.specs, container.learner.reward_map)
        finally:
            container.close()
    policies = len(container.registry.specs)
    console.print(f"learner: {rewards} rewards x {policies} policies in {learner_seconds:.2f} s")
    figures = (
        ("learner rewards/s (SQLite log)", learner_seconds),
        ("replay rewards/s (in memory)", replay_seconds),
        ("learn rewards/s (joined examples, one batch)", learn_seconds),
    )
    return [
        Result(name=name, mean=rewards / seconds, std=0.0, seconds=seconds, unit="1/s", extra={"policies": policies})
        for name, seconds in figures
    ]


def _timed_as_a_process(run: Callable[[], object]) -> float:
    """Return the seconds `run` takes in a heap like a worker process's: what startup made is frozen.

    `tipwise learner` (and `tipwise serve`) call `gc.freeze()` once started, so a collection under
    load scans only the batches in flight; without it here, every collection would also walk
    the benchmark's own objects, which no worker process holds.
    """
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started
    finally:
        gc.unfreeze()


def _learn_only(log: list[Event], specs: dict[str, PolicySpec], reward_map: RewardMap) -> float:
    """Return the seconds the policies take to learn the log's examples, decoded beforehand: the models alone."""
    from tipwise import events
    from tipwise.recommender import FEATURE_SPEC, FeedbackReaction, TipDecided

    decided: dict[UUID, TipDecided] = {}
    examples = []
    for event in log:
        if event.type == events.TIP_DECIDED:
            decision = TipDecided.from_message(event.message(events.messages.TipDecided))
            decided[decision.tip_instance_id] = decision
        elif event.type == events.FEEDBACK_REACTION:
            reaction = FeedbackReaction.from_message(event.message(events.messages.FeedbackReaction))
            decision = decided.pop(reaction.tip_instance_id)
            examples.append(
                LoggedReward(
                    shared=decision.shared,
                    action=decision.action,
                    propensity=decision.propensity,
                    reward=reward_map.reward(reaction.reaction.value),
                )
            )
    models = [build_policy(spec, features=FEATURE_SPEC) for spec in specs.values()]
    started = time.perf_counter()
    learn_together(models, examples)  # as the learner learns them
    return time.perf_counter() - started
