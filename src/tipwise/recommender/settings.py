"""Settings of the recommender (`TIPWISE_RECOMMENDER_*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tipwise.recommender.domain.candidates import CandidateRules


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIPWISE_RECOMMENDER_", extra="ignore")

    recent_window_hours: float = Field(default=12.0, ge=0)
    snooze_window_minutes: float = Field(default=120.0, ge=0)
    history_days: int = Field(default=90, ge=1)
    # How long this process keeps a person's recent shows between decisions; its own decisions and
    # reactions update them at once, another process's show after at most this long. 0: no cache.
    history_cache_seconds: float = Field(default=5.0, ge=0)

    def rules(self) -> CandidateRules:
        return CandidateRules(
            recent_window=timedelta(hours=self.recent_window_hours),
            snooze_window=timedelta(minutes=self.snooze_window_minutes),
        )
