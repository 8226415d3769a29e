"""Process-wide settings: where data lives, which database, where to listen."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    """Core settings, read from `TIPWISE_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TIPWISE_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: SecretStr | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The advice library to seed; default: the one bundled with Tipwise.
    advice_library: Path | None = None
    # Score decisions in a `tipwise ml-serve` process at this URL instead of in process.
    scorer_url: str | None = None
    # Run the outbox relay and consumers in a background thread of the app process.
    embedded_worker: bool = True
    # "embedded" keeps the event log in the database; a NATS URL (nats://host:4222) selects JetStream.
    event_bus: str = "embedded"
    # Namespaces NATS subjects and streams, so several installations can share one server.
    nats_prefix: str = "tipwise"
    # Events per relay transaction and per learner transaction on NATS (fetched and acknowledged together).
    nats_batch_size: int = Field(default=2000, ge=1, le=10_000)
    # Where model snapshots are published: files under the data dir, or MLflow (`TIPWISE_MLFLOW_*`).
    model_registry: Literal["files", "mlflow"] = "files"

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # HS256 keys shorter than the hash (32 bytes) weaken every token and cookie signed with them.
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes; leave it unset to have one generated")
        return value

    @field_validator("event_bus")
    @classmethod
    def _known_bus(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("nats://", "tls://")):
            raise ValueError("must be 'embedded' or a NATS URL such as nats://127.0.0.1:4222")
        return value

    @property
    def uses_nats(self) -> bool:
        return self.event_bus != "embedded"

    @field_validator("port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        if not 0 < value < 65536:
            raise ValueError("port must be between 1 and 65535")
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """Return the database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tipwise.sqlite3').as_posix()}"

    @property
    def models_dir(self) -> Path:
        """Where the file model registry keeps model snapshots."""
        return self.data_dir / "models"

    def resolved_secret_key(self) -> str:
        """Return the signing key, generating one into the data dir on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Create with 0600 so no other local user can read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key
