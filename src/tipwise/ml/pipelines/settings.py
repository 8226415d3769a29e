"""Settings of the learner (`TIPWISE_LEARNER_*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tipwise.ml.pipelines.learner import SnapshotCadence
from tipwise.ml.pipelines.rewards import RewardMap


class LearnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIPWISE_LEARNER_", extra="ignore")

    reward_wait_hours: float = Field(default=24.0, gt=0)
    snapshot_every_rewards: int = Field(default=100, ge=1)
    snapshot_every_seconds: float = Field(default=60.0, gt=0)
    # Threads numpy's BLAS may use while the learner learns and publishes (see `tipwise.kernel.blas`):
    # one keeps it to one core, and leaves the other to decisions.
    blas_threads: int = Field(default=1, ge=1, le=256)

    def reward_map(self) -> RewardMap:
        return RewardMap(wait=timedelta(hours=self.reward_wait_hours))

    def cadence(self) -> SnapshotCadence:
        return SnapshotCadence(every_rewards=self.snapshot_every_rewards, every_seconds=self.snapshot_every_seconds)
