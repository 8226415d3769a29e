"""The `tipwise` command line."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tipwise.cli_helpers import command_container, fail
from tipwise.kernel.errors import ConfigurationError
from tipwise.settings import Settings

if TYPE_CHECKING:
    from tipwise.bootstrap import Role

app = typer.Typer(help="Tipwise: the right tip at the right moment, learned from how you react.", no_args_is_help=True)
advice_app = typer.Typer(help="Work with the advice library.", no_args_is_help=True)
app.add_typer(advice_app, name="advice")
operator_app = typer.Typer(help="Manage operator accounts.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")
integrations_app = typer.Typer(help="Connected calendars.", no_args_is_help=True)
app.add_typer(integrations_app, name="integrations")


def _add_groups() -> None:
    from tipwise.bench.cli import bench_app
    from tipwise.ml.pipelines.commands import register as register_evaluation

    app.add_typer(bench_app, name="bench")
    register_evaluation(app)


_add_groups()


@app.callback()
def _configure() -> None:
    """Set up structured logging for every command."""
    from tipwise.kernel.logging import configure_logging

    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest version, and seed the advice library."""
    from tipwise import migrations
    from tipwise.advice import DEFAULT_LIBRARY, AdviceFacade, load_library
    from tipwise.kernel.clock import SystemClock
    from tipwise.kernel.db import Database

    settings = _settings()
    db = Database.connect(settings.sqlalchemy_url)
    try:
        before, heads = migrations.pending(db)
        migrations.upgrade(db)
        # Seeding here, once, spares the processes of a scaled deployment a race to insert the tips.
        advice = AdviceFacade.seed_and_load(
            db=db, library=load_library(settings.advice_library or DEFAULT_LIBRARY), clock=SystemClock()
        )
    finally:
        db.dispose()
    state = "already current" if before == heads else f"upgraded to {', '.join(sorted(heads))}"
    typer.echo(f"database {db.read_engine.url.render_as_string(hide_password=True)}: {state}")
    typer.echo(f"advice library: {len(advice.active())} tips")
    from tipwise.bootstrap import model_registry

    try:
        # Before the processes that share it start, so they need not race to create it.
        typer.echo(f"model registry: {model_registry(settings).prepare()}")
    except ConfigurationError as exc:
        fail(exc.detail)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [env TIPWISE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env TIPWISE_PORT].")] = None,
) -> None:
    """Serve the app (the schema must be current; see `migrate`)."""
    import uvicorn

    from tipwise.app import create_app
    from tipwise.bootstrap import build

    settings = _settings(host=host, port=port)
    try:
        container = build(settings)
    except ConfigurationError as exc:
        fail(exc.detail)
    typer.echo(f"Tipwise is serving on http://{settings.host}:{settings.port}  (Ctrl+C to stop)")
    try:
        uvicorn.run(create_app(container), host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        container.close()


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Address to listen on [env TIPWISE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [env TIPWISE_PORT].")] = None,
    scaled: Annotated[
        bool,
        typer.Option(
            help="Run the API, outbox relay, learner and ml-serve as separate processes "
            "(needs TIPWISE_DATABASE_URL and TIPWISE_EVENT_BUS=nats://...)."
        ),
    ] = False,
    scorer_port: Annotated[int, typer.Option(help="With --scaled: ml-serve's port.")] = 8100,
    relay_health_port: Annotated[int, typer.Option(help="With --scaled: the relay's health port.")] = 8101,
    learner_health_port: Annotated[int, typer.Option(help="With --scaled: the learner's health port.")] = 8102,
) -> None:
    """Migrate the database, seed the advice library and serve: everything `make up` needs."""
    if scaled:
        _up_scaled(host=host, port=port, scorer=scorer_port, relay=relay_health_port, learner=learner_health_port)
        return
    migrate()
    serve(host=host, port=port)


def _up_scaled(*, host: str | None, port: int | None, scorer: int, relay: int, learner: int) -> None:
    from tipwise.processes import Ports, scaled_commands, scaled_environment, supervise

    settings = _settings(host=host, port=port)
    if not settings.uses_nats:
        fail("--scaled needs TIPWISE_EVENT_BUS=nats://host:4222 (a NATS server with JetStream)")
    if settings.database_url is None or settings.sqlalchemy_url.startswith("sqlite"):
        fail("--scaled needs TIPWISE_DATABASE_URL=postgresql+psycopg://... (processes share one database)")
    migrate()
    ports = Ports(api=settings.port, scorer=scorer, relay=relay, learner=learner)
    commands = scaled_commands(host=settings.host, ports=ports)
    typer.echo(
        f"Tipwise (scaled) is serving on http://{settings.host}:{settings.port}: "
        + ", ".join(commands)
        + "  (Ctrl+C to stop)"
    )
    raise typer.Exit(supervise(commands, scaled_environment(host=settings.host, ports=ports)))


def _run_worker(role: Role, health_host: str, health_port: int) -> None:
    from tipwise.bootstrap import build
    from tipwise.processes import run_worker

    settings = _settings()
    try:
        container = build(settings, role=role)
    except ConfigurationError as exc:
        fail(exc.detail)
    try:
        run_worker(container, role=role, health_host=health_host, health_port=health_port)
    finally:
        container.close()


@app.command()
def relay(
    health_host: Annotated[str, typer.Option(help="Address of the /healthz and /readyz server.")] = "127.0.0.1",
    health_port: Annotated[int, typer.Option(help="Port of the /healthz and /readyz server.")] = 8101,
) -> None:
    """Publish committed outbox events on the bus, as a process of its own (scaled topology)."""
    _run_worker("relay", health_host, health_port)


@app.command()
def learner(
    health_host: Annotated[str, typer.Option(help="Address of the /healthz and /readyz server.")] = "127.0.0.1",
    health_port: Annotated[int, typer.Option(help="Port of the /healthz and /readyz server.")] = 8102,
) -> None:
    """Learn from rewards and publish model snapshots, as a process of its own (scaled topology)."""
    _run_worker("learner", health_host, health_port)


@app.command("ml-serve")
def ml_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
    poll: Annotated[float, typer.Option(help="Seconds between checks for newer snapshots.")] = 1.0,
) -> None:
    """Serve policy scoring from the newest model snapshots (point TIPWISE_SCORER_URL here)."""
    import uvicorn

    from tipwise.bootstrap import model_registry
    from tipwise.ml.serving import PolicyRegistry, PolicySettings
    from tipwise.ml.serving.app import create_scoring_app
    from tipwise.ml.serving.mlflow_registry import MlflowModelRegistry
    from tipwise.recommender import FEATURE_SPEC

    settings = _settings()
    policies = PolicySettings()
    registry = PolicyRegistry(specs=policies.specs(), live=policies.live, features=FEATURE_SPEC)
    try:
        models = model_registry(settings)
    except ConfigurationError as exc:
        fail(exc.detail)
    source = models.where if isinstance(models, MlflowModelRegistry) else str(settings.models_dir)
    scoring = create_scoring_app(registry=registry, models=models, poll_seconds=poll)
    typer.echo(f"ml-serve is scoring on http://{host}:{port} from {source}  (Ctrl+C to stop)")
    uvicorn.run(scoring, host=host, port=port, log_config=None, access_log=False)


REPLAY_ATTEMPTS = 20


@app.command()
def replay() -> None:
    """Rebuild every model from the event log and check it equals the live model bit for bit."""
    from tipwise.ml.pipelines import replay as rebuild
    from tipwise.ml.pipelines import stored_states
    from tipwise.ml.pipelines.learner import same_state

    with command_container(_settings()) as container:
        try:
            log = container.embedded_log()
        except ConfigurationError as exc:
            fail(exc.detail)
        # The learner writes its models and its log position in one transaction: the same position
        # read before and after the models means they belong to it, even with a server running.
        for _ in range(REPLAY_ATTEMPTS):
            position = log.position(container.learner.name)
            stored = stored_states(container.db)
            if log.position(container.learner.name) == position:
                break
        else:
            fail("the learner kept moving; stop the server or try again")
        rebuilt = rebuild(
            log.read(until=position),
            specs=container.registry.specs,
            features=container.registry.features,
            rewards=container.learner.reward_map,
        )
    mismatches = 0
    for name, model in rebuilt.items():
        live = stored.get(name)
        # No stored model means nothing was learned yet: the log must not teach anything either.
        identical = model.version == 0 if live is None else same_state(model.state_bytes(), live)
        mismatches += not identical
        verdict = "identical" if identical else "DIFFERS"
        typer.echo(f"{name:<16} rebuilt from log up to position {position}: {model.version} rewards, {verdict}")
    if mismatches:
        fail(f"{mismatches} model(s) differ from the log")


@operator_app.command("grant")
def operator_grant(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Give an account the operator role (the /ops pages)."""
    _set_role(email, operator=True)


@operator_app.command("revoke")
def operator_revoke(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Take the operator role away from an account."""
    _set_role(email, operator=False)


def _set_role(email: str, *, operator: bool) -> None:
    from tipwise.auth import Role
    from tipwise.kernel.errors import NotFound

    with command_container(_settings()) as container:
        try:
            account = container.auth.set_role(email=email, role=Role.OPERATOR if operator else Role.USER)
        except NotFound as exc:
            fail(exc.detail)
    typer.echo(f"{account.email} is now {account.role.value} (takes effect at their next sign-in)")


@integrations_app.command("sync")
def integrations_sync(
    everything: Annotated[bool, typer.Option("--all", help="Read every feed now, not only those due.")] = False,
) -> None:
    """Read the connected calendar feeds that are due (a running server does this every few seconds).

    A feed whose owner has not consented to calendar signals is not read; its signals are deleted.
    """
    with command_container(_settings()) as container:
        report = container.integrations.sync(everything=everything)
        container.worker.run_once(jobs=False)  # relay the signal events the sync wrote
    typer.echo(
        f"calendar feeds: {report.read} read, {report.not_modified} not modified, "
        f"{report.failed} failed, {report.paused} paused (no consent)"
    )


@advice_app.command("check")
def advice_check(
    path: Annotated[Path | None, typer.Argument(help="Library file to check (default: the bundled one).")] = None,
) -> None:
    """Validate an advice library file and summarize it."""
    from collections import Counter

    from tipwise.advice import DEFAULT_LIBRARY, AdviceLibraryError, load_library

    try:
        library = load_library(path or DEFAULT_LIBRARY)
    except AdviceLibraryError as exc:
        fail(exc.detail)
    counts = Counter(tip.category.value for tip in library.tips)
    typer.echo(f"advice library {library.version}: {len(library.tips)} tips, all valid")
    for category, count in sorted(counts.items()):
        typer.echo(f"  {category:<12} {count}")


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Print the OpenAPI document of the HTTP API."""
    document = openapi_document()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


def openapi_document() -> dict[str, Any]:
    """Build the app on a throwaway database and return its OpenAPI document."""
    from tipwise import migrations
    from tipwise.app import create_app
    from tipwise.bootstrap import build
    from tipwise.kernel.db import Database

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=None,
            secret_key="openapi-only-a-throwaway-app-that-never-serves",  # noqa: S106 - never serves
            embedded_worker=False,
        )
        db = Database.connect(settings.sqlalchemy_url)
        migrations.upgrade(db)
        db.dispose()
        container = build(settings)
        try:
            return create_app(container).openapi()
        finally:
            container.close()


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:
        problems = "; ".join(
            f"TIPWISE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        typer.secho(f"error: invalid configuration: {problems}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from exc
