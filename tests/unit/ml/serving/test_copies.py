"""Copies of trained models (what the learner publishes) and models that learn a batch together."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.ml.serving.test_registry import WIDE, random_batch, random_candidates, random_context
from tipwise.ml.serving import (
    EpsilonGreedySpec,
    FeatureSpec,
    LinUCBSpec,
    LoggedReward,
    Policy,
    PolicySpec,
    UniformSpec,
    build_policy,
    copy_policy,
    learn_together,
)
from tipwise.ml.serving.policies import exact_copy

# WIDE's names at declared positions: no two of them share a hashed one, so a candidate switches on one
# crossed block and the model keeps its factored form (WIDE's collisions make it dense at once).
BLOCKS = FeatureSpec(
    name="test/blocks", shared=WIDE.shared, action=WIDE.action, action_cross=WIDE.action_cross, normalize=True
)
LAYOUTS = [pytest.param(BLOCKS, id="factored"), pytest.param(WIDE, id="dense")]
SPECS: dict[str, PolicySpec] = {
    "linucb": LinUCBSpec(),
    "greedy": EpsilonGreedySpec(),
    "random": UniformSpec(),
    "linucb-ridge-2": LinUCBSpec(ridge=2.0),
}


def trained(
    spec: PolicySpec, examples: list[LoggedReward], *, features: FeatureSpec = BLOCKS, batch: int = 7
) -> Policy:
    model = build_policy(spec, features=features)
    for start in range(0, len(examples), batch):
        model.learn(examples[start : start + batch])
    return model


def loaded(model: Policy, spec: PolicySpec, *, features: FeatureSpec = BLOCKS) -> Policy:
    fresh = build_policy(spec, features=features)
    fresh.load_state(model.state_bytes())
    return fresh


def assert_same_answers(left: Policy, right: Policy, rng: np.random.Generator) -> None:
    """Both pick alike on random inputs, probabilities and confidence to the bit."""
    for seed in range(25):
        context, candidates = random_context(rng), random_candidates(rng)
        ours = left.pick(context=context, candidates=candidates, rng=np.random.default_rng(seed))
        theirs = right.pick(context=context, candidates=candidates, rng=np.random.default_rng(seed))
        assert ours.index == theirs.index
        assert np.array(ours.probabilities).tobytes() == np.array(theirs.probabilities).tobytes()
        assert np.float64(ours.confidence).tobytes() == np.float64(theirs.confidence).tobytes()


class TestExactCopy:
    @pytest.mark.parametrize("features", LAYOUTS)
    @pytest.mark.parametrize("seed", range(5))
    def test_a_copy_answers_bit_for_bit_as_a_load_of_the_state(self, seed: int, features: FeatureSpec) -> None:
        rng = np.random.default_rng(seed)
        model = trained(SPECS["linucb"], random_batch(rng, int(rng.integers(2, 80))), features=features)
        load = loaded(model, SPECS["linucb"], features=features)

        copy = exact_copy(model)

        assert copy is not None
        assert copy.state_bytes() == model.state_bytes()
        assert copy.readout().digest() == load.readout().digest()  # type: ignore[attr-defined]
        assert_same_answers(copy, load, rng)

    def test_a_copy_is_independent_of_its_original(self) -> None:
        rng = np.random.default_rng(11)
        model = trained(SPECS["greedy"], random_batch(rng, 30))
        before = model.state_bytes()
        copy = exact_copy(model)
        assert copy is not None

        copy.learn(random_batch(rng, 9))

        assert model.state_bytes() == before
        assert (model.version, copy.version) == (30, 39)
        assert_same_answers(model, loaded(model, SPECS["greedy"]), rng)

    def test_after_one_example_at_a_time_only_a_load_answers_as_the_state_does(self) -> None:
        rng = np.random.default_rng(12)
        model = trained(SPECS["linucb"], random_batch(rng, 30))
        model.learn(random_batch(rng, 1))  # updated by Sherman-Morrison: equal up to rounding only

        assert exact_copy(model) is None
        assert_same_answers(copy_policy(model, SPECS["linucb"], BLOCKS), loaded(model, SPECS["linucb"]), rng)

    def test_other_kinds_of_model_have_no_exact_copy(self) -> None:
        assert exact_copy(trained(SPECS["random"], random_batch(np.random.default_rng(1), 5))) is None


class TestLearnTogether:
    @pytest.mark.parametrize("features", LAYOUTS)
    @pytest.mark.parametrize("seed", range(5))
    def test_models_end_as_if_each_had_learned_alone(self, seed: int, features: FeatureSpec) -> None:
        """Batch after batch, of several sizes (one example at a time too), and from unequal starts."""
        rng = np.random.default_rng(seed)
        start = random_batch(rng, 20)
        # The greedy model starts elsewhere in half of the runs: then it must learn on its own.
        starts = {name: start + (random_batch(rng, 3) if name == "greedy" and seed % 2 else []) for name in SPECS}
        together = {name: trained(spec, starts[name], features=features) for name, spec in SPECS.items()}
        alone = {name: trained(spec, starts[name], features=features) for name, spec in SPECS.items()}
        for size in (int(rng.integers(2, 40)), 1, 1, int(rng.integers(2, 40)), 5):
            batch = random_batch(rng, size)
            learn_together(together.values(), batch)
            for model in alone.values():
                model.learn(batch)

            for name in SPECS:
                assert together[name].state_bytes() == alone[name].state_bytes(), name
                assert together[name].version == alone[name].version
        for name in SPECS:
            assert_same_answers(together[name], alone[name], rng)

    def test_a_model_that_took_a_copy_learns_on_independently(self) -> None:
        rng = np.random.default_rng(3)
        models = [build_policy(SPECS["linucb"], features=BLOCKS), build_policy(SPECS["greedy"], features=BLOCKS)]
        learn_together(models, random_batch(rng, 12))
        leader, follower = models
        assert follower.model is not leader.model  # type: ignore[attr-defined]
        before = follower.state_bytes()

        leader.learn(random_batch(rng, 12))

        assert follower.state_bytes() == before
