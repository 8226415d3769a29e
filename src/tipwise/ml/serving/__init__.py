"""Policy scoring: features, policies, and the registry that serves decisions."""

from tipwise.ml.serving.features import FeatureSpec
from tipwise.ml.serving.policies import (
    Decision,
    EpsilonGreedyPolicy,
    EpsilonGreedySpec,
    Features,
    LinUCBPolicy,
    LinUCBSpec,
    LoggedReward,
    Policy,
    PolicySpec,
    RidgeModel,
    UniformPolicy,
    UniformSpec,
    build_policy,
    spec_from_dict,
)
from tipwise.ml.serving.registry import PolicyChoice, PolicyRegistry, RankedDecision, copy_policy
from tipwise.ml.serving.settings import PolicySettings

__all__ = [
    "Decision",
    "EpsilonGreedyPolicy",
    "EpsilonGreedySpec",
    "FeatureSpec",
    "Features",
    "LinUCBPolicy",
    "LinUCBSpec",
    "LoggedReward",
    "Policy",
    "PolicyChoice",
    "PolicyRegistry",
    "PolicySettings",
    "PolicySpec",
    "RankedDecision",
    "RidgeModel",
    "UniformPolicy",
    "UniformSpec",
    "build_policy",
    "copy_policy",
    "spec_from_dict",
]
