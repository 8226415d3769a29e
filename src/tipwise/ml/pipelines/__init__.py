"""Learning: the online learner, the reward map, off-policy evaluation and the promotion gate."""

from tipwise.ml.pipelines.evaluation import (
    DR,
    IPS,
    SNIPS,
    Estimate,
    Estimator,
    LoggedRound,
    cross_fitted_rewards,
    sample_mean,
)
from tipwise.ml.pipelines.learner import Learner, SnapshotCadence, replay, stored_states
from tipwise.ml.pipelines.privacy import LearnerPersonalData
from tipwise.ml.pipelines.promotions import (
    GateResult,
    InvalidPromotion,
    Promotion,
    PromotionRefused,
    current_live_policy,
    gate,
    promote,
    promotion_history,
)
from tipwise.ml.pipelines.report import (
    EvaluationInputs,
    EvaluationReport,
    PolicyEvaluation,
    RewardHistory,
    build_inputs,
    build_report,
    evaluate,
    plot,
    render_png,
    render_reward_history_png,
    reward_history,
)
from tipwise.ml.pipelines.rewards import REACTIONS, RewardMap
from tipwise.ml.pipelines.settings import LearnerSettings

__all__ = [
    "DR",
    "IPS",
    "REACTIONS",
    "SNIPS",
    "Estimate",
    "Estimator",
    "EvaluationInputs",
    "EvaluationReport",
    "GateResult",
    "InvalidPromotion",
    "Learner",
    "LearnerPersonalData",
    "LearnerSettings",
    "LoggedRound",
    "PolicyEvaluation",
    "Promotion",
    "PromotionRefused",
    "RewardHistory",
    "RewardMap",
    "SnapshotCadence",
    "build_inputs",
    "build_report",
    "cross_fitted_rewards",
    "current_live_policy",
    "evaluate",
    "gate",
    "plot",
    "promote",
    "promotion_history",
    "render_png",
    "render_reward_history_png",
    "replay",
    "reward_history",
    "sample_mean",
    "stored_states",
]
