"""Unit tests of the feature-vector layout: [shared, action, action_cross x shared]."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tipwise.ml.serving import CandidateSet, FeatureSpec, collision_free_seed, feature_hash

SPEC = FeatureSpec(name="tiny/v1", shared=("a", "b"), action=("x", "y", "z"), action_cross=("z", "x"))


class TestFeatureSpec:
    def test_dimension_counts_shared_action_and_crossed_blocks(self) -> None:
        assert SPEC.dim == 2 + 3 + 2 * 2
        assert FeatureSpec(name="plain", shared=("a",), action=("x", "y")).dim == 3

    def test_matrix_lays_out_shared_then_action_then_each_cross_times_shared(self) -> None:
        matrix = SPEC.matrix({"a": 2.0, "b": 3.0}, [{"x": 1.0, "y": 5.0}, {"z": 7.0, "x": 0.5}])

        expected = np.array(
            [
                # a    b    x    y    z    z*a   z*b   x*a  x*b
                [2.0, 3.0, 1.0, 5.0, 0.0, 0.0, 0.0, 2.0, 3.0],
                [2.0, 3.0, 0.5, 0.0, 7.0, 14.0, 21.0, 1.0, 1.5],
            ]
        )
        np.testing.assert_array_equal(matrix, expected)

    def test_rows_follow_the_order_of_the_candidates(self) -> None:
        first, second = {"y": 1.0}, {"y": 2.0}

        forward = SPEC.matrix({"a": 1.0}, [first, second])
        backward = SPEC.matrix({"a": 1.0}, [second, first])

        np.testing.assert_array_equal(forward[::-1], backward)

    def test_missing_features_are_zero(self) -> None:
        matrix = SPEC.matrix({}, [{}])

        np.testing.assert_array_equal(matrix, np.zeros((1, SPEC.dim)))

    def test_row_is_the_matrix_row_of_a_single_candidate(self) -> None:
        shared = {"a": 1.5, "b": -1.0}
        action = {"x": 2.0, "z": 1.0}

        np.testing.assert_array_equal(SPEC.row(shared, action), SPEC.matrix(shared, [action])[0])
        np.testing.assert_array_equal(SPEC.row(shared, action), [1.5, -1.0, 2.0, 0.0, 1.0, 1.5, -1.0, 3.0, -2.0])

    def test_unknown_shared_feature_raises_key_error(self) -> None:
        with pytest.raises(KeyError, match="unknown shared feature 'c'"):
            SPEC.matrix({"c": 1.0}, [{"x": 1.0}])

    def test_unknown_action_feature_raises_key_error(self) -> None:
        with pytest.raises(KeyError, match="unknown action feature 'w'"):
            SPEC.matrix({"a": 1.0}, [{"x": 1.0}, {"w": 1.0}])

    @pytest.mark.parametrize(
        ("shared", "action"),
        [(("a", "a"), ("x",)), (("a",), ("x", "y", "x"))],
        ids=["shared", "action"],
    )
    def test_duplicate_feature_names_are_rejected(self, shared: tuple[str, ...], action: tuple[str, ...]) -> None:
        with pytest.raises(ValueError, match="feature names must be unique"):
            FeatureSpec(name="dup", shared=shared, action=action)

    def test_cross_names_must_be_action_features(self) -> None:
        with pytest.raises(ValueError, match=r"action_cross names must be action features: \['a'\]"):
            FeatureSpec(name="bad", shared=("a",), action=("x",), action_cross=("x", "a"))


# 8 shared buckets: a -> 0, b -> 4 (and the undeclared e -> 0, g -> 4); 16 action buckets: x -> 10, y -> 15, z -> 4.
HASHED = FeatureSpec(
    name="hashed/v1",
    shared=("a", "b"),
    action=("x", "y", "z"),
    action_cross=("z", "x"),
    shared_bits=3,
    action_bits=4,
)


class TestHashedFeatureSpec:
    def test_the_hash_is_salted_blake2b_and_never_changes(self) -> None:
        # Fixed values: a vector stored with a decision must read the same in any process and version.
        assert feature_hash("bias") == 8234549041007231156
        assert feature_hash("bias", seed=95) == 2491884785144744766
        assert feature_hash("bias") == int.from_bytes(
            hashlib.blake2b(b"bias", digest_size=8, salt=bytes(16)).digest(), "little"
        )

    def test_positions_are_the_hash_modulo_the_width(self) -> None:
        assert (HASHED.shared_width, HASHED.action_width) == (8, 16)
        assert HASHED.dim == 8 + 16 + 2 * 8
        assert [HASHED.shared_index(n) for n in ("a", "b")] == [feature_hash(n) % 8 for n in ("a", "b")] == [0, 4]
        assert [HASHED.action_index(n) for n in ("x", "y", "z")] == [10, 15, 4]

    def test_unknown_names_land_in_their_bucket_and_shared_buckets_add_up(self) -> None:
        shared = HASHED.shared_vector({"a": 1.0, "e": 2.0, "g": 0.5, "c": 3.0})

        expected = np.zeros(8)
        expected[[0, 4, 7]] = [3.0, 0.5, 3.0]
        np.testing.assert_array_equal(shared, expected)

    def test_the_shared_vector_follows_the_names_of_each_context(self) -> None:
        # The positions of the last context's names are remembered: a context with other names, or the
        # same names in another order, must still land each value in its own bucket.
        first = HASHED.shared_vector({"a": 1.0, "b": 2.0})
        swapped = HASHED.shared_vector({"b": 2.0, "a": 1.0})
        other = HASHED.shared_vector({"b": 5.0, "c": 3.0})
        again = HASHED.shared_vector({"a": 4.0, "b": 6.0})

        np.testing.assert_array_equal(first, swapped)
        expected = np.zeros(8)
        expected[[4, 7]] = [5.0, 3.0]
        np.testing.assert_array_equal(other, expected)
        expected = np.zeros(8)
        expected[[0, 4]] = [4.0, 6.0]
        np.testing.assert_array_equal(again, expected)

    def test_matrix_crosses_the_buckets_of_the_cross_names(self) -> None:
        matrix = HASHED.matrix({"a": 2.0, "b": 3.0}, [{"x": 1.0, "y": 5.0}, {"z": 7.0, "new": 1.0}])

        s = np.zeros(8)
        s[[0, 4]] = [2.0, 3.0]
        first, second = np.zeros(16), np.zeros(16)
        first[[10, 15]] = [1.0, 5.0]
        second[[4, HASHED.action_index("new")]] += [7.0, 1.0]
        np.testing.assert_array_equal(matrix[0], np.concatenate([s, first, 0.0 * s, 1.0 * s]))
        np.testing.assert_array_equal(matrix[1], np.concatenate([s, second, second[4] * s, 0.0 * s]))

    def test_collisions_list_declared_names_sharing_a_bucket(self) -> None:
        crowded = FeatureSpec(name="crowded", shared=("a", "b", "e", "g"), action=("x",), shared_bits=3)

        assert sorted(crowded.collisions()) == [("a", "e"), ("b", "g")]
        assert HASHED.collisions() == []

    def test_collision_free_seed_finds_a_seed_without_collisions(self) -> None:
        crowded = FeatureSpec(name="crowded", shared=("a", "b", "e", "g"), action=("x",), shared_bits=3)

        seed = collision_free_seed(crowded)
        reseeded = FeatureSpec(name="crowded", shared=crowded.shared, action=("x",), shared_bits=3, seed=seed)

        assert seed > 0
        assert reseeded.collisions() == []

    def test_cross_names_sharing_a_bucket_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="distinct action buckets"):
            FeatureSpec(name="bad", shared=("a",), action=("a", "e"), action_cross=("a", "e"), action_bits=3)

    @pytest.mark.parametrize("bits", [-1, 17])
    def test_bits_out_of_range_are_rejected(self, bits: int) -> None:
        with pytest.raises(ValueError, match="shared_bits"):
            FeatureSpec(name="bad", shared=("a",), action=("x",), shared_bits=bits)


class TestCandidateSet:
    def test_is_the_sequence_of_the_candidates_features_with_their_action_rows(self) -> None:
        features = [{"x": 1.0, "y": 5.0}, {"z": 7.0, "new": 1.0}]

        candidates = CandidateSet(HASHED, features)

        assert len(candidates) == 2
        assert list(candidates) == features
        assert candidates[1] is features[1]
        np.testing.assert_array_equal(candidates.action, HASHED.action_matrix(features))
        np.testing.assert_array_equal(candidates.cross, HASHED.action_matrix(features)[:, [4, 10]])
        np.testing.assert_array_equal(candidates.columns, sorted({4, 10, 15, HASHED.action_index("new")}))
        np.testing.assert_array_equal(
            candidates.z, np.hstack([candidates.action[:, candidates.columns], candidates.cross])
        )

    def test_rows_are_read_only(self) -> None:
        candidates = CandidateSet(HASHED, [{"x": 1.0}])

        with pytest.raises(ValueError, match="read-only"):
            candidates.action[0, 0] = 1.0

    def test_rows_of_the_wrong_shape_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="expected"):
            CandidateSet(HASHED, [{"x": 1.0}], action=np.zeros((1, 3)))
