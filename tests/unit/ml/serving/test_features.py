"""Unit tests of the feature-vector layout: [shared, action, action_cross x shared]."""

from __future__ import annotations

import numpy as np
import pytest

from tipwise.ml.serving import FeatureSpec

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
