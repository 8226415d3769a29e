"""CLI commands of the learning pipelines: `tipwise evaluate` and `tipwise policy promote|list`.

`register(app)` adds them to the `tipwise` command line. Each command wires
the container from the environment (`TIPWISE_*`), reads what it needs and
closes it again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tipwise.cli_helpers import command_container, fail
from tipwise.kernel.errors import TipwiseError
from tipwise.ml.pipelines.promotions import current_live_policy, promote, promotion_history
from tipwise.ml.pipelines.report import EvaluationReport, plot
from tipwise.settings import Settings

if TYPE_CHECKING:
    pass

PLOT_FILE = "evaluation.png"
# Flag a policy whose importance weights are worth fewer than this share of the decisions.
THIN_SHARE = 0.1


class EstimatorName(StrEnum):
    DR = "dr"
    SNIPS = "snips"
    IPS = "ips"


def register(app: typer.Typer) -> None:
    """Add `evaluate` and the `policy` group (`promote`, `list`) to `app`."""
    app.command("evaluate")(evaluate_command)
    policy_app = typer.Typer(
        help="The live and shadow policies; promote a shadow the decision log shows is better.", no_args_is_help=True
    )
    policy_app.command("promote")(promote_command)
    policy_app.command("list")(list_command)
    app.add_typer(policy_app, name="policy")


SinceOption = Annotated[
    str | None,
    typer.Option(help="Only decisions made at or after this ISO 8601 time (UTC when it has no zone)."),
]


def evaluate_command(
    since: SinceOption = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Where to draw the PNG (default: evaluation.png in the data dir).")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Estimate the live and every shadow policy on the logged decisions (IPS, SNIPS, DR with intervals)."""
    settings = Settings()
    since_at = _parse_since(since)
    with command_container(settings) as container:
        try:
            report = container.evaluate(since=since_at)
        except ValueError as exc:
            fail(f"nothing to evaluate: {exc}")
    typer.echo(render(report))
    written = plot(report, plot_path or settings.data_dir / PLOT_FILE)
    typer.echo(f"plot: {written}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        typer.echo(f"json: {json_path}")


def promote_command(
    name: Annotated[str, typer.Argument(help="The policy to make live (one of the configured policies).")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate refuses (logged as a warning and recorded).")
    ] = False,
    estimator: Annotated[
        EstimatorName, typer.Option(help="The estimator whose lower bound and estimate the gate compares.")
    ] = EstimatorName.DR,
    since: SinceOption = None,
    note: Annotated[str | None, typer.Option(help="Why, for the promotion history.")] = None,
) -> None:
    """Make NAME the live policy if its lower confidence bound beats the live policy's estimate."""
    since_at = _parse_since(since)
    with command_container(Settings()) as container:
        try:
            report: EvaluationReport | None = container.evaluate(since=since_at)
        except ValueError as exc:
            if not force:
                fail(f"cannot evaluate the candidate: {exc}")
            typer.secho(f"warning: no evaluation ({exc}); promoting on --force alone", fg=typer.colors.YELLOW, err=True)
            report = None
        try:
            promotion = promote(
                container.db,
                candidate=name,
                report=report,
                now=container.clock.now(),
                estimator=estimator.value,
                force=force,
                note=note,
                configured=list(container.registry.specs),
            )
        except TipwiseError as exc:
            fail(exc.detail)
    if promotion.forced:
        typer.secho(f"warning: {name!r} did not pass the gate; promoted because of --force", fg="yellow", err=True)
    evidence = (
        f"{estimator.value.upper()} lower bound {promotion.candidate_lower:.4f} vs live estimate "
        f"{promotion.live_estimate:.4f}"
        if promotion.candidate_lower is not None and promotion.live_estimate is not None
        else "no evaluation"
    )
    typer.echo(
        f"promoted {name!r}{' (forced)' if promotion.forced else ''}: {evidence}. "
        "It becomes the live policy when Tipwise next starts."
    )


def list_command() -> None:
    """Show the live policy, the shadows, and the promotion history."""
    with command_container(Settings()) as container:
        registry = container.registry
        versions = registry.versions()
        promoted = current_live_policy(container.db)
        history = promotion_history(container.db)
    typer.echo("policies:")
    for name, spec in registry.specs.items():
        role = "live" if name == registry.live else "shadow"
        typer.echo(f"  {name:<16} {spec.kind:<16} {role:<7} model version {versions.get(name, 0)}")
    if promoted is not None and promoted != registry.live:
        typer.echo(f"the newest promotion names {promoted!r}; it becomes live when Tipwise next starts")
    typer.echo("promotions (newest first):")
    if not history:
        typer.echo("  none")
    for promotion in history:
        evidence = (
            f"{promotion.estimator.upper()} lower {promotion.candidate_lower:.4f} vs live {promotion.live_estimate:.4f}"
            if promotion.candidate_lower is not None and promotion.live_estimate is not None
            else f"{promotion.estimator.upper()} no evaluation"
        )
        forced = " FORCED" if promotion.forced else ""
        note = f"  ({promotion.note})" if promotion.note else ""
        typer.echo(
            f"  #{promotion.id} {promotion.promoted_at.isoformat(timespec='seconds')} "
            f"{promotion.policy:<16}{forced} {evidence}{note}"
        )


def render(report: EvaluationReport) -> str:
    """Return the report as a plain-text table: one row per policy, value [lower, upper] per estimator."""
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())) or "none"
    since = f" since {report.since.isoformat()}" if report.since else ""
    header = f"{'policy':<22}{'n':>6}{'ess':>8}" + "".join(f"  {name.upper():<25}" for name in report.estimators)
    lines = [
        f"Off-policy evaluation of {report.n} decisions{since} "
        f"(reward map {report.reward_map_version}, {report.confidence:.0%} intervals; skipped: {skipped})",
        "",
        header.rstrip(),
    ]
    thin = False
    for evaluation in report.policies:
        label = f"{evaluation.policy} (live)" if evaluation.live else evaluation.policy
        estimates = [evaluation.estimate(name) for name in report.estimators]
        # The importance weights, hence their effective sample size, are the same for every estimator.
        ess = estimates[0].effective_sample_size
        marker = "*" if ess < THIN_SHARE * evaluation.n else " "
        thin = thin or marker == "*"
        cells = "".join(f"  {e.value:>7.4f} [{e.lower:.4f}, {e.upper:.4f}]".ljust(27) for e in estimates)
        lines.append(f"{label:<22}{evaluation.n:>6}{ess:>7.1f}{marker}{cells}".rstrip())
    if thin:
        lines += [
            "",
            f"* effective sample size below {THIN_SHARE:.0%} of n: a few decisions carry these estimates, "
            "so their intervals are unreliable; log more decisions or let the live policy explore more.",
        ]
    if report.on_policy is not None:
        observed = report.on_policy
        lines += [
            "",
            f"observed average reward of {report.live}'s own {observed.n} decisions: "
            f"{observed.value:.4f} [{observed.lower:.4f}, {observed.upper:.4f}]",
        ]
    return "\n".join(lines)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--since") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
