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
from tipwise.ml.serving.registry import (
    PolicyChoice,
    PolicyRegistry,
    RankedDecision,
    Scorer,
    copy_policy,
    policy_version,
)
from tipwise.ml.serving.remote import HttpScorer, ScorerUnavailable
from tipwise.ml.serving.settings import PolicySettings
from tipwise.ml.serving.snapshots import FileModelRegistry, ModelRegistry, ModelSnapshot

__all__ = [
    "Decision",
    "EpsilonGreedyPolicy",
    "EpsilonGreedySpec",
    "FeatureSpec",
    "Features",
    "FileModelRegistry",
    "HttpScorer",
    "LinUCBPolicy",
    "LinUCBSpec",
    "LoggedReward",
    "ModelRegistry",
    "ModelSnapshot",
    "Policy",
    "PolicyChoice",
    "PolicyRegistry",
    "PolicySettings",
    "PolicySpec",
    "RankedDecision",
    "RidgeModel",
    "Scorer",
    "ScorerUnavailable",
    "UniformPolicy",
    "UniformSpec",
    "build_policy",
    "copy_policy",
    "policy_version",
    "spec_from_dict",
]
