"""Learning: the online learner and the reward map."""

from tipwise.ml.pipelines.learner import Learner, SnapshotCadence, replay, stored_states
from tipwise.ml.pipelines.rewards import REACTIONS, RewardMap
from tipwise.ml.pipelines.settings import LearnerSettings

__all__ = ["REACTIONS", "Learner", "LearnerSettings", "RewardMap", "SnapshotCadence", "replay", "stored_states"]
