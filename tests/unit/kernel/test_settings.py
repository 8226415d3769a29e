"""Core settings: what `TIPWISE_*` values are refused, and why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tipwise.settings import Settings


class TestSettings:
    def test_a_short_secret_key_is_refused_naming_the_setting(self) -> None:
        with pytest.raises(ValidationError, match="secret_key") as refused:
            Settings(secret_key="too-short-for-hs256")
        assert "at least 32 bytes" in str(refused.value)

    def test_a_long_enough_secret_key_is_taken(self) -> None:
        key = "k" * 32
        settings = Settings(secret_key=key)
        assert settings.resolved_secret_key() == key

    @pytest.mark.parametrize("bus", ["kafka://broker:9092", "127.0.0.1:4222", ""])
    def test_an_event_bus_that_is_neither_embedded_nor_nats_is_refused(self, bus: str) -> None:
        with pytest.raises(ValidationError, match="event_bus"):
            Settings(event_bus=bus)

    @pytest.mark.parametrize("bus", ["nats://127.0.0.1:4222", "tls://nats.example:4222"])
    def test_a_nats_url_selects_nats(self, bus: str) -> None:
        assert Settings(event_bus=bus).uses_nats

    def test_the_default_bus_is_embedded(self) -> None:
        assert not Settings().uses_nats
