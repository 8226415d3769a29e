"""Settings of the integrations module (`TIPWISE_INTEGRATIONS_*`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntegrationsSettings(BaseSettings):
    """How often and how far calendar feeds are read."""

    model_config = SettingsConfigDict(env_prefix="TIPWISE_INTEGRATIONS_", extra="forbid")

    # Minutes between two reads of the same feed (providers refresh their iCal feeds every few hours anyway).
    sync_minutes: float = Field(default=15.0, gt=0)
    # How far ahead a read expands events into busy intervals.
    horizon_hours: float = Field(default=48.0, gt=0)
    # A "not modified" answer is trusted while the stored intervals still reach this far ahead;
    # closer to their end, the feed is read in full again to expand the next days.
    lookahead_hours: float = Field(default=24.0, gt=0)
    # A read waits this long for the feed's server, and refuses a bigger body.
    fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    max_feed_bytes: int = Field(default=5_000_000, gt=0)
    # Feeds on loopback, private or link-local addresses are refused unless this is set (a feed URL
    # is chosen by a user, and must not let them probe the server's own network).
    allow_private_addresses: bool = False

    @property
    def sync_interval(self) -> timedelta:
        return timedelta(minutes=self.sync_minutes)

    @property
    def horizon(self) -> timedelta:
        return timedelta(hours=self.horizon_hours)

    @property
    def lookahead(self) -> timedelta:
        return timedelta(hours=self.lookahead_hours)
