"""Settings of policy serving (`TIPWISE_POLICY_*`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from tipwise.ml.serving.policies import EpsilonGreedySpec, LinUCBSpec, PolicySpec, UniformSpec

DEFAULT_POLICIES: dict[str, PolicySpec] = {
    "linucb": LinUCBSpec(),
    "epsilon_greedy": EpsilonGreedySpec(),
    "random": UniformSpec(),
}


class PolicySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIPWISE_POLICY_", extra="ignore")

    # Which of the configured policies decides; the others run as shadows.
    live: str = "linucb"

    def specs(self) -> dict[str, PolicySpec]:
        return dict(DEFAULT_POLICIES)
