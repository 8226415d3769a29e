"""Unit tests of `tipwise bench learn`: the protocol's pieces, on tiny streams with fixed seeds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tipwise.bench import learn
from tipwise.bench.learn import FullInformationRidge, Result, Stream
from tipwise.ml.serving.policies import FactoredRidge, FeatureLayout, LinUCBSpec


def separable_stream(n: int = 300, k: int = 3, seed: int = 0) -> Stream:
    """Three well separated clusters: the label is the cluster, so a linear learner can be nearly perfect."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    x = 3.0 * np.eye(k)[y] + 0.3 * rng.standard_normal((n, k))
    return Stream(name="tiny", x=x, y=y, k=k)


def result(name: str, stream: str, mean: float) -> Result:
    return Result(name=name, stream=stream, mean=mean, std=0.0, seconds=0.0, curve=np.zeros(1))


class TestBenchmark:
    def test_one_result_per_policy_and_stream_with_its_summary(self) -> None:
        stream = separable_stream(n=120)

        results = learn.benchmark([stream], ["random", "linucb", "ceiling"], [0])

        assert [(r.name, r.stream) for r in results] == [("random", "tiny"), ("linucb", "tiny"), ("ceiling", "tiny")]
        for r in results:
            assert 0.0 <= r.mean <= 1.0
            assert r.std == 0.0
            assert r.seconds >= 0.0
            assert r.curve.shape == (120,)
            assert r.curve[-1] == pytest.approx(r.mean)

    def test_learning_policies_beat_random_on_a_learnable_stream(self) -> None:
        stream = separable_stream()

        means = {r.name: r.mean for r in learn.benchmark([stream], list(learn.POLICIES), [0])}

        assert means["random"] < 0.45
        for name in (*learn.NATIVE, "ceiling"):
            assert means[name] > means["random"] + 0.35, name
        assert means["ceiling"] > 0.9

    def test_std_is_over_the_seeds(self) -> None:
        stream = separable_stream(n=60)

        (summary,) = learn.benchmark([stream], ["random"], [0, 1, 2])

        per_seed = [learn.run_random(stream, seed).mean() for seed in (0, 1, 2)]
        assert summary.mean == pytest.approx(np.mean(per_seed))
        assert summary.std == pytest.approx(np.std(per_seed))

    def test_runs_replay_with_the_same_seed(self) -> None:
        stream = separable_stream(n=80)

        for name in ("random", "linear_ts", "vw-squarecb", "vw-adapter", "ceiling"):
            np.testing.assert_array_equal(learn.run(name, stream, 3), learn.run(name, stream, 3))

    def test_each_seed_plays_its_own_permutation(self) -> None:
        stream = separable_stream(n=50)

        first = learn.run_ceiling(stream, 0)
        order = np.random.default_rng(0).permutation(50)

        assert first.shape == (50,)
        assert set(np.unique(first)) <= {0.0, 1.0}
        assert not np.array_equal(order, np.random.default_rng(1).permutation(50))

    def test_unknown_policy_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="unknown policies \\['nope'\\]"):
            learn.benchmark([separable_stream(n=10)], ["nope"], [0])


class TestStreamFeatures:
    def test_shared_features_are_the_stream_and_actions_are_crossed_one_hots(self) -> None:
        spec = learn.stream_features(separable_stream(n=5))

        assert spec.shared == ("x0", "x1", "x2")
        assert spec.action == ("action=0", "action=1", "action=2")
        assert spec.action_cross == spec.action
        assert spec.normalize is False
        assert spec.dim == 3 + 3 + 3 * 3

    def test_unknown_stream_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="unknown stream 'mnist'"):
            learn.load_stream("mnist")


class TestFullInformationRidge:
    @pytest.mark.parametrize("shared_weights", [False, True])
    @pytest.mark.parametrize("normalize", [False, True])
    def test_predictions_equal_the_policy_ridge_learning_every_action(
        self, normalize: bool, shared_weights: bool
    ) -> None:
        stream = separable_stream(n=40, k=4, seed=1)
        spec = replace(learn.stream_features(stream), normalize=normalize)
        layout = FeatureLayout(spec, shared_weights=shared_weights)
        factored = FactoredRidge(layout, 2.0)
        closed = FullInformationRidge(
            shared_dim=stream.x.shape[1], k=4, ridge=2.0, normalize=normalize, shared_weights=shared_weights
        )
        candidates = [{name: 1.0} for name in spec.action]
        for i in range(stream.n):
            rows = layout.rows(dict(zip(spec.shared, stream.x[i].tolist(), strict=True)), candidates)
            # FactoredRidge learns its rows rounded to multiples of 2^-16 (exact statistics); the ceiling does not.
            np.testing.assert_allclose(closed.mean(stream.x[i]), factored.mean(rows), atol=1e-5)
            truth = np.eye(4)[stream.y[i]]
            for action in range(4):
                factored.update(rows.select(action), float(truth[action]))
            closed.update(stream.x[i], truth)

    def test_the_ceiling_uses_the_linear_policies_default_ridge(self) -> None:
        assert learn.CEILING == LinUCBSpec()


class TestRatios:
    def test_best_tipwise_is_compared_with_the_best_vw_and_the_ceiling(self) -> None:
        results = [
            result("random", "s", 0.1),
            result("linucb", "s", 0.66),
            result("ridge_igw", "s", 0.6),
            result("vw-adapter", "s", 0.55),
            result("vw-squarecb", "s", 0.6),
            result("ceiling", "s", 0.75),
        ]

        (ratio,) = learn.ratios(results)

        assert ratio.best_tipwise == "linucb"
        assert ratio.best_vw == "vw-squarecb"
        assert ratio.versus_vw == pytest.approx(1.1)
        assert ratio.versus_ceiling == pytest.approx(0.88)

    def test_missing_sides_give_no_ratio(self) -> None:
        (ratio,) = learn.ratios([result("linucb", "s", 0.5)])

        assert ratio.best_vw is None
        assert ratio.versus_vw is None
        assert ratio.versus_ceiling is None


class TestParseSeeds:
    @pytest.mark.parametrize(
        ("text", "expected"), [("0-4", [0, 1, 2, 3, 4]), ("3", [3]), ("0,2,5", [0, 2, 5]), ("1-2,7", [1, 2, 7])]
    )
    def test_ranges_and_lists_are_expanded(self, text: str, expected: list[int]) -> None:
        assert learn.parse_seeds(text) == expected

    @pytest.mark.parametrize("text", ["", "a", "1-b"])
    def test_malformed_seeds_are_rejected(self, text: str) -> None:
        with pytest.raises(typer.BadParameter):
            learn.parse_seeds(text)


class TestLearnCommand:
    def test_json_and_plot_are_written_with_one_entry_per_policy_and_stream(self, tmp_path: Path) -> None:
        app = typer.Typer()
        learn.register(app)
        app.command("noop")(lambda: None)  # a group of two commands keeps `learn` as a subcommand
        out, png = tmp_path / "bench.json", tmp_path / "img" / "bench.png"

        invoked = CliRunner().invoke(
            app,
            [
                "learn",
                *("--streams", "digits", "--seeds", "0", "--policies", "random,ceiling", "--jobs", "1"),
                *("--json", str(out), "--plot", str(png)),
            ],
        )

        assert invoked.exit_code == 0, invoked.output
        data = json.loads(out.read_text())
        assert data["benchmark"] == "learn"
        assert [(r["name"], r["stream"]) for r in data["results"]] == [("random", "digits"), ("ceiling", "digits")]
        assert set(data["results"][0]) == {"name", "stream", "mean", "std", "seconds"}
        assert data["results"][1]["mean"] > 0.8
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "digits" in invoked.output

    def test_unknown_stream_option_is_a_usage_error(self) -> None:
        app = typer.Typer()
        learn.register(app)
        app.command("noop")(lambda: None)

        invoked = CliRunner().invoke(app, ["learn", "--streams", "mnist"])

        assert invoked.exit_code == 2
        assert "unknown streams" in invoked.output
