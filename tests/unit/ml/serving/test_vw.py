"""Unit tests of the Vowpal Wabbit `cb_explore_adf` policy adapter."""

from __future__ import annotations

import numpy as np
import pytest

from tipwise.ml.serving import Decision, Features, FeatureSpec, LoggedReward, build_policy, spec_from_dict
from tipwise.ml.serving.policies import VWCbAdfSpec
from tipwise.ml.serving.vw import VWPolicy, vw_features, vw_name

SPEC = FeatureSpec(name="test/v1", shared=("bias", "tod=morning"), action=("a0", "a1", "a2"))
CONTEXT: Features = {"bias": 1.0, "tod=morning": 1.0}
CANDIDATES: list[Features] = [{"a0": 1.0}, {"a1": 1.0}, {"a2": 1.0}]
BEST = 1


def policy(**changes: object) -> VWPolicy:
    return VWPolicy(VWCbAdfSpec(**changes), features=SPEC)  # type: ignore[arg-type]


def rewarding_batch(best: int = BEST, rounds: int = 30, context: Features = CONTEXT) -> list[LoggedReward]:
    return [
        LoggedReward(shared=context, action=candidate, propensity=1 / 3, reward=1.0 if index == best else 0.0)
        for _ in range(rounds)
        for index, candidate in enumerate(CANDIDATES)
    ]


def pick(vw: VWPolicy, seed: int, *, explore: bool = True, candidates: list[Features] | None = None) -> Decision:
    return vw.pick(
        context=CONTEXT,
        candidates=CANDIDATES if candidates is None else candidates,
        rng=np.random.default_rng(seed),
        explore=explore,
    )


class TestVWNames:
    def test_separators_and_the_escape_mark_are_escaped(self) -> None:
        assert vw_name("tod=morning") == "tod=morning"
        assert vw_name("a b:c|d%e\tf") == "a%20b%3Ac%7Cd%25e%09f"

    def test_feature_tokens_skip_zeros_and_keep_values(self) -> None:
        tokens = {"x": "x", "y:z": "y%3Az", "w": "w"}

        assert vw_features({"x": 1.5, "y:z": -2.0, "w": 0.0}, tokens, "shared") == "x:1.5 y%3Az:-2"

    def test_unknown_feature_is_a_key_error(self) -> None:
        with pytest.raises(KeyError, match="unknown action feature 'nope'"):
            vw_features({"nope": 1.0}, {}, "action")

    def test_unknown_feature_of_a_hashed_namespace_is_escaped_like_any_other(self) -> None:
        assert vw_features({"x": 1.0, "no pe": 2.0}, {"x": "x"}, "action", hashed=True) == "x:1 no%20pe:2"


class TestVWPolicy:
    @pytest.mark.parametrize("exploration", ["epsilon", "squarecb"])
    def test_probabilities_cover_every_candidate_and_sum_to_one(self, exploration: str) -> None:
        vw = policy(exploration=exploration)
        vw.learn(rewarding_batch(rounds=3))

        for seed in range(20):
            decision = pick(vw, seed)

            assert len(decision.probabilities) == len(CANDIDATES)
            assert sum(decision.probabilities) == pytest.approx(1.0)
            assert decision.propensity == decision.probabilities[decision.index]
            assert 0.0 <= decision.confidence <= 1.0

    def test_same_seed_replays_the_same_decision(self) -> None:
        vw = policy()
        vw.learn(rewarding_batch(rounds=2))

        for seed in range(20):
            assert pick(vw, seed) == pick(vw, seed)

    def test_learning_makes_the_greedy_pick_the_rewarded_action(self) -> None:
        vw = policy()
        vw.learn(rewarding_batch())

        decision = pick(vw, 0, explore=False)

        assert decision.index == BEST
        assert decision.probabilities == (0.0, 1.0, 0.0)
        assert decision.explored is False

    def test_learning_follows_whichever_action_pays(self) -> None:
        vw = policy(exploration="epsilon")
        vw.learn(rewarding_batch(best=2))

        assert pick(vw, 0, explore=False).index == 2

    def test_untrained_policy_is_uniform(self) -> None:
        decision = pick(policy(), 0)

        assert decision.probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))

    def test_epsilon_exploration_keeps_the_epsilon_share_on_every_candidate(self) -> None:
        vw = policy(exploration="epsilon", epsilon=0.3)
        vw.learn(rewarding_batch())

        decision = pick(vw, 0)

        assert decision.probabilities == pytest.approx((0.1, 0.8, 0.1), abs=1e-6)

    def test_floor_mixes_uniform_mass_into_vw_probabilities(self) -> None:
        vw = policy(exploration="epsilon", epsilon=0.0, floor=0.3)
        vw.learn(rewarding_batch())

        assert pick(vw, 0).probabilities == pytest.approx((0.1, 0.8, 0.1), abs=1e-6)

    def test_feature_names_with_vw_separators_are_learned_as_themselves(self) -> None:
        odd = FeatureSpec(name="odd/v1", shared=("time of day:morning|x",), action=("tip a:b", "tip|c"))
        vw = VWPolicy(VWCbAdfSpec(), features=odd)
        context = {"time of day:morning|x": 1.0}
        candidates: list[Features] = [{"tip a:b": 1.0}, {"tip|c": 1.0}]
        vw.learn(
            [
                LoggedReward(shared=context, action=candidate, propensity=0.5, reward=float(index))
                for _ in range(30)
                for index, candidate in enumerate(candidates)
            ]
        )

        decision = vw.pick(context=context, candidates=candidates, rng=np.random.default_rng(0), explore=False)

        assert decision.probabilities == (0.0, 1.0)

    def test_unknown_feature_is_rejected(self) -> None:
        with pytest.raises(KeyError, match="unknown shared feature 'evening'"):
            policy().pick(context={"evening": 1.0}, candidates=CANDIDATES, rng=np.random.default_rng(0))

    def test_a_hashed_spec_takes_unknown_features(self) -> None:
        hashed = FeatureSpec(name="h/v1", shared=SPEC.shared, action=SPEC.action, shared_bits=4, action_bits=4)
        vw = build_policy(spec_from_dict({"kind": "vw_cb_adf"}), features=hashed)

        decision = vw.pick(
            context={"evening": 1.0}, candidates=[{"a0": 1.0}, {"new": 1.0}], rng=np.random.default_rng(0)
        )

        assert len(decision.probabilities) == 2
        assert sum(decision.probabilities) == pytest.approx(1.0)

    def test_pick_without_candidates_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="at least one candidate"):
            pick(policy(), 0, candidates=[])

    def test_version_counts_learned_examples(self) -> None:
        vw = policy()

        vw.learn(rewarding_batch(rounds=2))

        assert vw.version == 6

    def test_state_round_trip_gives_identical_decisions_and_keeps_learning_alike(self) -> None:
        vw = policy()
        vw.learn(rewarding_batch(rounds=3))
        copy = VWPolicy(VWCbAdfSpec(), features=SPEC)

        copy.load_state(vw.state_bytes())

        assert copy.version == vw.version == 9
        for seed in range(10):
            assert pick(copy, seed) == pick(vw, seed)
        for model in (vw, copy):
            model.learn(rewarding_batch(best=0, rounds=3))
        assert pick(copy, 0) == pick(vw, 0)

    def test_loaded_state_is_independent_of_the_original(self) -> None:
        vw = policy()
        copy = VWPolicy(VWCbAdfSpec(), features=SPEC)
        copy.load_state(vw.state_bytes())

        copy.learn(rewarding_batch())

        assert vw.version == 0
        assert pick(vw, 0).probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))

    def test_state_that_is_not_a_vw_model_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="not a Vowpal Wabbit policy state"):
            policy().load_state(b"not a model")

    def test_arguments_follow_the_spec(self) -> None:
        epsilon = policy(exploration="epsilon", epsilon=0.2, learning_rate=0.5, seed=7).arguments()
        square = policy().arguments()

        assert epsilon == [
            "--cb_explore_adf",
            "--quiet",
            "-q",
            "sa",
            "--cb_type",
            "mtr",
            "--epsilon",
            "0.2",
            "-l",
            "0.5",
            "--random_seed",
            "7",
        ]
        assert "--squarecb" in square
        assert "--epsilon" not in square

    def test_spec_dict_round_trip_builds_the_vw_policy(self) -> None:
        vw = policy(exploration="epsilon")

        copy = build_policy(spec_from_dict(vw.spec_dict()), features=SPEC)

        assert isinstance(copy, VWPolicy)
        assert (
            copy.spec_dict()
            == vw.spec_dict()
            == {
                "kind": "vw_cb_adf",
                "exploration": "epsilon",
                "epsilon": 0.05,
                "learning_rate": 2.0,
                "seed": 0,
                "floor": 0.0,
            }
        )
