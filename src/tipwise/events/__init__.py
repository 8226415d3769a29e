"""Events: the outbox, the durable log, the bus port and its embedded adapter, the Protobuf payloads."""

from tipwise.events import messages, shredding
from tipwise.events.bus import EmbeddedBus, EventBus, Lag, applied_history, open_batch, publish
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
    UnknownEventType,
    payload_type,
)
from tipwise.events.payloads import PayloadError, from_timestamp, to_timestamp
from tipwise.events.privacy import EventsPersonalData
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
    "EventsPersonalData",
    "Lag",
    "PayloadError",
    "UnknownEventType",
    "Worker",
    "applied_history",
    "from_timestamp",
    "messages",
    "open_batch",
    "payload_type",
    "publish",
    "shredding",
    "to_timestamp",
]
