"""`tipwise bench learn`: learning quality on supervised data turned into bandit streams.

The protocol is the one of the reference numbers (bandit-benchmark.md): the
classes of a labelled data set are the actions, a pick earns 1 when it names
the label and 0 otherwise; features are standardized on the whole set and
each seed makes one pass in `default_rng(seed).permutation(n)` order; the
metric is the mean realized reward of the pass.

Tipwise's policies run through the public `Policy` interface, one pick and
one single-example `learn` per round, on a feature spec whose shared
features are the stream's, whose action features are the one-hot action id,
and whose crossed block is that one-hot times the shared features, so a
linear model has its own weights per action. Vowpal Wabbit runs through
pyvw exactly as the reference describes (`vw-eps`, `vw-squarecb`,
`vw-squarecb-l2`) and behind Tipwise's Policy interface (`vw-adapter`, the
`vw_cb_adf` policy with its default spec); `random` picks uniformly, and
`ceiling` is the linear policies' ridge model learning the true reward of
every action every round (full information).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from numpy.typing import NDArray

from tipwise.ml.serving.features import FeatureSpec
from tipwise.ml.serving.policies import (
    EpsilonGreedySpec,
    LinearTSSpec,
    LinUCBSpec,
    LoggedReward,
    PolicySpec,
    RidgeIGWSpec,
    VWCbAdfSpec,
    argmax_share,
    build_policy,
    sample_index,
)

Rewards = NDArray[np.float64]

STREAMS = ("digits", "synthetic")
# Every Tipwise policy with its default spec: the defaults are chosen once, for every stream.
TIPWISE: dict[str, PolicySpec] = {
    "epsilon_greedy": EpsilonGreedySpec(),
    "linucb": LinUCBSpec(),
    "linear_ts": LinearTSSpec(),
    "ridge_igw": RidgeIGWSpec(),
    "vw-adapter": VWCbAdfSpec(),
}
# Tipwise's own learners; the adapter is Vowpal Wabbit behind the Policy interface and counts as VW.
NATIVE = ("epsilon_greedy", "linucb", "linear_ts", "ridge_igw")
VW_REFERENCES: dict[str, tuple[str, ...]] = {
    "vw-eps": ("--epsilon", "0.05"),
    "vw-squarecb": ("--squarecb",),
    "vw-squarecb-l2": ("--squarecb", "-l", "2"),
}
POLICIES = ("random", *TIPWISE, *VW_REFERENCES, "ceiling")
# The ceiling is the ridge model of the linear policies' defaults (penalty, shared weights or not).
CEILING = LinUCBSpec()


@dataclass(frozen=True, kw_only=True)
class Stream:
    """A labelled data set played as a bandit: `k` actions, reward 1 when the action is the label."""

    name: str
    x: NDArray[np.float64]
    y: NDArray[np.int64]
    k: int

    @property
    def n(self) -> int:
        return int(self.y.size)


@dataclass(frozen=True, kw_only=True)
class Result:
    """One (policy, stream) over all seeds."""

    name: str
    stream: str
    mean: float
    std: float
    seconds: float  # wall time of all its seeds' passes, summed
    curve: NDArray[np.float64] = field(repr=False, compare=False)  # progressive mean reward, mean over seeds

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "stream": self.stream, "mean": self.mean, "std": self.std, "seconds": self.seconds}


def load_stream(name: str) -> Stream:
    """Return one of the benchmark's streams, standardized on the whole set."""
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}")
    from sklearn.datasets import load_digits, make_classification
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        x, y = load_digits(return_X_y=True)
        k = 10
    elif name == "synthetic":
        x, y = make_classification(
            n_samples=20000,
            n_features=40,
            n_informative=25,
            n_redundant=5,
            n_classes=20,
            n_clusters_per_class=1,
            class_sep=1.5,
            random_state=7,
        )
        k = 20
    return Stream(name=name, x=StandardScaler().fit_transform(x), y=np.asarray(y, dtype=np.int64), k=k)


def stream_features(stream: Stream) -> FeatureSpec:
    """Return the feature spec Tipwise's policies see a stream through."""
    actions = tuple(f"action={a}" for a in range(stream.k))
    shared = tuple(f"x{i}" for i in range(stream.x.shape[1]))
    # No normalize: the features are standardized already, and unit-length rows would shrink every
    # one by about sqrt(2 d), which the default ridge penalty then swamps (digits, LinUCB: 0.54 instead
    # of 0.83; with a 100 times smaller penalty it is level, 0.84, so normalizing buys nothing here).
    return FeatureSpec(name=f"bench.{stream.name}/v1", shared=shared, action=actions, action_cross=actions)


def _order(stream: Stream, seed: int) -> NDArray[np.int64]:
    order: NDArray[np.int64] = np.random.default_rng(seed).permutation(stream.n)
    return order


def run_random(stream: Stream, seed: int) -> Rewards:
    """Pick uniformly at random."""
    rng = np.random.default_rng([seed, 1])
    picks = rng.integers(stream.k, size=stream.n)
    rewards: Rewards = (picks == stream.y[_order(stream, seed)]).astype(np.float64)
    return rewards


def run_policy(spec: PolicySpec, stream: Stream, seed: int) -> Rewards:
    """Play one pass through the public Policy interface: a pick, then a one-example learn, per round."""
    features = stream_features(stream)
    policy = build_policy(spec, features=features)
    candidates = [{name: 1.0} for name in features.action]
    names = features.shared
    rng = np.random.default_rng([seed, 1])
    rewards = np.zeros(stream.n)
    for t, i in enumerate(_order(stream, seed)):
        context = dict(zip(names, stream.x[i].tolist(), strict=True))
        decision = policy.pick(context=context, candidates=candidates, rng=rng)
        reward = 1.0 if decision.index == stream.y[i] else 0.0
        rewards[t] = reward
        policy.learn(
            [
                LoggedReward(
                    shared=context, action=candidates[decision.index], propensity=decision.propensity, reward=reward
                )
            ]
        )
    return rewards


def run_vw(arguments: Sequence[str], stream: Stream, seed: int) -> Rewards:
    """Play one pass with Vowpal Wabbit through pyvw, exactly as the reference does."""
    from vowpalwabbit import pyvw

    vw = pyvw.Workspace(
        arg_list=["--cb_explore_adf", "--quiet", "-q", "sa", "--cb_type", "mtr", *arguments, "--random_seed", str(seed)]
    )
    rng = np.random.default_rng([seed, 1])
    actions = [f"|a a{a}" for a in range(stream.k)]
    rewards = np.zeros(stream.n)
    for t, i in enumerate(_order(stream, seed)):
        shared = "shared |s " + " ".join(f"f{j}:{v:.9g}" for j, v in enumerate(stream.x[i].tolist()))
        lines = [shared, *actions]
        pmf = np.asarray(vw.predict(lines), dtype=np.float64)
        pmf /= pmf.sum()
        action = sample_index(pmf, rng)
        reward = 1.0 if action == stream.y[i] else 0.0
        rewards[t] = reward
        lines[1 + action] = f"0:{-reward:g}:{pmf[action]:.9g} {actions[action]}"
        vw.learn(lines)
    vw.finish()
    return rewards


class FullInformationRidge:
    """The ridge model of the linear policies on `stream_features`, learning every action's reward every round.

    Updating `FactoredRidge` with all k rows per round gives the same
    predictions (tested; up to its rounding of the rows to multiples of
    2^-16) at k times the cost; here the symmetry of full
    information gives them in closed form. With z = [s, 1] (scaled like the
    spec's rows) the score of action a is z . (P w + u_a): w the shared
    block (zero without `shared_weights`), u_a = [cross block of a, weight
    of the action's one-hot]. With G = sum z z', M = (G + ridge I)^-1,
    h_a = sum y_a z and H = sum_a h_a, the ridge solution is
    ((k + 1) I - k ridge M_ss) w = (M H)_s and u_a = M h_a - (I - ridge M) P w.
    """

    def __init__(self, *, shared_dim: int, k: int, ridge: float, normalize: bool, shared_weights: bool) -> None:
        self.ridge = ridge
        self.k = k
        self.normalize = normalize
        self.shared_weights = shared_weights
        self._d = shared_dim
        self._m = np.eye(shared_dim + 1) / ridge
        self._h = np.zeros((k, shared_dim + 1))
        self._w = np.zeros(shared_dim)
        self._u = np.zeros((k, shared_dim + 1))

    def _z(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        z = np.append(s, 1.0)
        if self.normalize:
            # A row [s, one-hot, one-hot (x) s] has squared length 2 |s|^2 + 1.
            z /= np.sqrt(2.0 * float(s @ s) + 1.0)
        return z

    def mean(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the predicted reward of every action in context `s`."""
        z = self._z(s)
        result: NDArray[np.float64] = z[: self._d] @ self._w + self._u @ z
        return result

    def update(self, s: NDArray[np.float64], rewards: NDArray[np.float64]) -> None:
        """Learn the reward of every action in context `s`."""
        z = self._z(s)
        mz = self._m @ z
        self._m -= np.outer(mz, mz) / (1.0 + z @ mz)
        self._h += rewards[:, None] * z[None, :]
        d, m = self._d, self._m
        if not self.shared_weights:
            self._u = self._h @ m
            return
        system = (self.k + 1) * np.eye(d) - self.k * self.ridge * m[:d, :d]
        self._w = np.linalg.solve(system, (m @ self._h.sum(axis=0))[:d])
        pw = np.append(self._w, 0.0)
        self._u = self._h @ m - (pw - self.ridge * (m @ pw))[None, :]


def run_ceiling(stream: Stream, seed: int) -> Rewards:
    """Play greedily on the same ridge model, learning the true reward of every action every round."""
    features = stream_features(stream)
    model = FullInformationRidge(
        shared_dim=stream.x.shape[1],
        k=stream.k,
        ridge=CEILING.ridge,
        normalize=features.normalize,
        shared_weights=CEILING.shared_weights,
    )
    rng = np.random.default_rng([seed, 1])
    rewards = np.zeros(stream.n)
    truth = np.eye(stream.k)
    for t, i in enumerate(_order(stream, seed)):
        action = sample_index(argmax_share(model.mean(stream.x[i])), rng)
        rewards[t] = 1.0 if action == stream.y[i] else 0.0
        model.update(stream.x[i], truth[stream.y[i]])
    return rewards


def run(name: str, stream: Stream, seed: int) -> Rewards:
    """Play one pass of the named policy (see POLICIES) over `stream`."""
    if name == "random":
        return run_random(stream, seed)
    if name == "ceiling":
        return run_ceiling(stream, seed)
    if name in VW_REFERENCES:
        return run_vw(VW_REFERENCES[name], stream, seed)
    if name in TIPWISE:
        return run_policy(TIPWISE[name], stream, seed)
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")


def _timed_run(name: str, stream: Stream, seed: int) -> tuple[Rewards, float]:
    started = time.perf_counter()
    rewards = run(name, stream, seed)
    return rewards, time.perf_counter() - started


def _one_thread() -> None:
    # Two processes on two cores: BLAS threads inside each would only fight over them.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def benchmark(
    streams: Sequence[Stream],
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    jobs: int = 1,
    on_done: Callable[[], None] = lambda: None,
) -> list[Result]:
    """Run every policy on every stream for every seed; return one result per (policy, stream)."""
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {', '.join(POLICIES)}")
    tasks = [(name, stream, seed) for stream in streams for name in policies for seed in seeds]
    runs: dict[tuple[str, str, int], tuple[Rewards, float]] = {}
    if jobs <= 1:
        for name, stream, seed in tasks:
            runs[name, stream.name, seed] = _timed_run(name, stream, seed)
            on_done()
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread) as pool:
            # Longest first (the big stream, VW slowest), so the two workers finish together.
            ordered = sorted(tasks, key=lambda task: (task[1].n, task[0].startswith("vw")), reverse=True)
            futures: dict[Future[tuple[Rewards, float]], tuple[str, str, int]] = {
                pool.submit(_timed_run, name, stream, seed): (name, stream.name, seed) for name, stream, seed in ordered
            }
            for future in as_completed(futures):
                runs[futures[future]] = future.result()
                on_done()
    return [_summary(name, stream, seeds, runs) for stream in streams for name in policies]


def _summary(
    name: str, stream: Stream, seeds: Sequence[int], runs: dict[tuple[str, str, int], tuple[Rewards, float]]
) -> Result:
    rewards = [runs[name, stream.name, seed][0] for seed in seeds]
    means = np.array([r.mean() for r in rewards])
    steps = np.arange(1, stream.n + 1)
    curve = np.mean([np.cumsum(r) / steps for r in rewards], axis=0)
    return Result(
        name=name,
        stream=stream.name,
        mean=float(means.mean()),
        std=float(means.std()),
        seconds=float(sum(runs[name, stream.name, seed][1] for seed in seeds)),
        curve=curve,
    )


@dataclass(frozen=True, kw_only=True)
class Ratios:
    """Per stream: the best Tipwise policy against the best VW and against the full-information ceiling."""

    stream: str
    best_tipwise: str | None
    best_vw: str | None
    versus_vw: float | None
    versus_ceiling: float | None


def ratios(results: Sequence[Result]) -> list[Ratios]:
    """Return the same-run ratios per stream (None where a side was not run)."""
    out = []
    for stream in dict.fromkeys(r.stream for r in results):
        here = [r for r in results if r.stream == stream]
        tipwise = max((r for r in here if r.name in NATIVE), key=lambda r: r.mean, default=None)
        vw = max((r for r in here if r.name.startswith("vw-")), key=lambda r: r.mean, default=None)
        ceiling = next((r for r in here if r.name == "ceiling"), None)
        out.append(
            Ratios(
                stream=stream,
                best_tipwise=tipwise.name if tipwise else None,
                best_vw=vw.name if vw else None,
                versus_vw=tipwise.mean / vw.mean if tipwise and vw and vw.mean > 0 else None,
                versus_ceiling=tipwise.mean / ceiling.mean if tipwise and ceiling and ceiling.mean > 0 else None,
            )
        )
    return out


def plot(results: Sequence[Result], path: Path) -> None:
    """Write a PNG of the progressive mean reward of every policy, one panel per stream."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = list(dict.fromkeys(r.stream for r in results))
    fig, axes = plt.subplots(1, len(streams), figsize=(6.5 * len(streams), 4.5), squeeze=False)
    for ax, stream in zip(axes[0], streams, strict=True):
        for result in (r for r in results if r.stream == stream):
            steps = np.arange(1, result.curve.size + 1)
            style = "--" if result.name.startswith("vw") else ":" if result.name in ("random", "ceiling") else "-"
            ax.plot(steps, result.curve, style, label=f"{result.name} ({result.mean:.3f})", linewidth=1.4)
        ax.set_title(stream)
        ax.set_xlabel("round")
        ax.set_ylabel("mean reward so far")
        ax.set_xscale("log")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _names(value: str, known: Sequence[str], label: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise typer.BadParameter(f"unknown {label} {unknown or value!r}; known: {', '.join(known)}")
    return names


def parse_seeds(value: str) -> list[int]:
    """Parse `0-4` or `0,2,5` (or a mix) into a list of seeds."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in value.split(",") if p.strip()):
            low, _, high = part.partition("-")
            seeds.extend(range(int(low), int(high) + 1) if high else [int(low)])
    except ValueError as exc:
        raise typer.BadParameter(f"seeds must look like 0-4 or 0,2,5, got {value!r}") from exc
    if not seeds:
        raise typer.BadParameter("no seeds given")
    return seeds


def print_report(results: Sequence[Result]) -> None:
    """Print the table of results and the ratios per stream."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Learning quality: mean realized reward over one pass (mean and std over seeds)")
    for column in ("stream", "policy", "mean", "std", "seconds"):
        table.add_column(column, justify="left" if column in ("stream", "policy") else "right")
    for r in results:
        table.add_row(r.stream, r.name, f"{r.mean:.3f}", f"{r.std:.3f}", f"{r.seconds:.1f}")
    console = Console()
    console.print(table)
    for ratio in ratios(results):
        versus_vw = "n/a" if ratio.versus_vw is None else f"{ratio.versus_vw:.3f}"
        versus_ceiling = "n/a" if ratio.versus_ceiling is None else f"{ratio.versus_ceiling:.3f}"
        console.print(
            f"{ratio.stream}: best Tipwise ({ratio.best_tipwise}) / best VW ({ratio.best_vw}) = {versus_vw}; "
            f"best Tipwise / ceiling = {versus_ceiling}"
        )


def learn(
    streams: Annotated[str, typer.Option(help=f"Comma-separated streams: {', '.join(STREAMS)}.")] = ",".join(STREAMS),
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-4 or 0,2,5.")] = "0-4",
    policies: Annotated[str, typer.Option(help=f"Comma-separated policies: {', '.join(POLICIES)}.")] = ",".join(
        POLICIES
    ),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON to this file.")] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of the progressive mean reward curves.")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (default: one per core).")] = 0,
) -> None:
    """Measure learning quality on supervised streams played as bandits, against VW and a full-information ceiling."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stream_names = _names(streams, STREAMS, "streams")
    policy_names = _names(policies, POLICIES, "policies")
    seed_list = parse_seeds(seeds)
    loaded = [load_stream(name) for name in stream_names]
    workers = jobs if jobs > 0 else os.cpu_count() or 1
    with Progress(
        TextColumn("bench learn"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("runs", total=len(loaded) * len(policy_names) * len(seed_list))
        results = benchmark(loaded, policy_names, seed_list, jobs=workers, on_done=lambda: progress.advance(task))
    print_report(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps({"benchmark": "learn", "results": [r.as_json() for r in results]}, indent=2) + "\n"
        )
    if plot_path is not None:
        plot(results, plot_path)


def register(app: typer.Typer) -> None:
    """Add the `learn` command to the `tipwise bench` group."""
    app.command("learn")(learn)
