"""Events: the outbox, the durable log, the bus port and its embedded adapter."""

from tipwise.events.bus import EmbeddedBus, EventBus, Lag, publish
from tipwise.events.contracts import (
    CONSENT_CHANGED,
    FEEDBACK_REACTION,
    PREFERENCES_CHANGED,
    REWARD_DEFAULTED,
    SIGNAL_RECEIVED,
    TIP_DECIDED,
    TIP_DELIVERED,
    USER_DELETED,
    Consumer,
    Event,
)
from tipwise.events.worker import Worker

__all__ = [
    "CONSENT_CHANGED",
    "FEEDBACK_REACTION",
    "PREFERENCES_CHANGED",
    "REWARD_DEFAULTED",
    "SIGNAL_RECEIVED",
    "TIP_DECIDED",
    "TIP_DELIVERED",
    "USER_DELETED",
    "Consumer",
    "EmbeddedBus",
    "Event",
    "EventBus",
    "Lag",
    "Worker",
    "publish",
]
