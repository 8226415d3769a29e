"""Settings of policy serving (`TIPWISE_POLICY_*`) and of the MLflow model registry (`TIPWISE_MLFLOW_*`)."""

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


class MlflowSettings(BaseSettings):
    """Where the MLflow model registry is; read only when `TIPWISE_MODEL_REGISTRY=mlflow`."""

    model_config = SettingsConfigDict(env_prefix="TIPWISE_MLFLOW_", extra="ignore")

    # e.g. http://mlflow:5000, or sqlite:///path/mlflow.db for a local store without a server.
    tracking_uri: str | None = None
    # Default: the tracking URI.
    registry_uri: str | None = None
    # The experiment that holds one run per snapshot.
    experiment: str = "tipwise"
    # Registered model names are `<prefix><policy>`, so installations can share a server.
    model_prefix: str = "tipwise-"
    # Where a newly created experiment keeps its artifacts; default: the server's artifact root.
    artifact_location: str | None = None
