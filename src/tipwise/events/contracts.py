"""The event envelope and the event types Tipwise publishes, each with its Protobuf payload message."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, overload
from uuid import UUID

from google.protobuf.message import DecodeError, Message

from tipwise.events import messages, payloads
from tipwise.kernel.db import WriteSession
from tipwise.kernel.ids import new_id

TIP_DECIDED = "tip.decided"
TIP_DELIVERED = "tip.delivered"
FEEDBACK_REACTION = "feedback.reaction"
SIGNAL_RECEIVED = "signal.received"
CONSENT_CHANGED = "consent.changed"
# Published by profile when a person changes their preferences (payload: the new preferences).
PREFERENCES_CHANGED = "preferences.changed"
USER_DELETED = "user.deleted"
# Published by the learner when a decision got no reaction within the reward wait.
REWARD_DEFAULTED = "reward.defaulted"

# The payload message of every event type (proto/tipwise/events/v1). A new event type needs a
# message there and an entry here.
PAYLOAD_TYPES: Mapping[str, type[Message]] = {
    SIGNAL_RECEIVED: messages.SignalReceived,
    TIP_DECIDED: messages.TipDecided,
    TIP_DELIVERED: messages.TipDelivered,
    FEEDBACK_REACTION: messages.FeedbackReaction,
    CONSENT_CHANGED: messages.ConsentChanged,
    USER_DELETED: messages.UserDeleted,
    REWARD_DEFAULTED: messages.RewardDefaulted,
    PREFERENCES_CHANGED: messages.PreferencesChanged,
}

M = TypeVar("M", bound=Message)


class UnknownEventType(ValueError):
    """An event type with no payload message in `PAYLOAD_TYPES`."""

    def __init__(self, type: str) -> None:
        super().__init__(
            f"unknown event type {type!r}; known: {', '.join(sorted(PAYLOAD_TYPES))} "
            "(a new type needs a message in proto/tipwise/events/v1 and an entry in PAYLOAD_TYPES)"
        )


def payload_type(type: str) -> type[Message]:
    """Return the payload message class of event type `type`; raises UnknownEventType."""
    try:
        return PAYLOAD_TYPES[type]
    except KeyError:
        raise UnknownEventType(type) from None


@dataclass(frozen=True, kw_only=True)
class Event:
    """An envelope: who it is about (`subject`), what happened (`type`), and the payload bytes.

    The payload is the serialized Protobuf message of the event's type
    (`PAYLOAD_TYPES`). The outbox and the log store the envelope's fields as
    columns; `to_envelope` gives the same fields and payload as one
    `tipwise.events.v1.Envelope`, the bytes a network bus carries.
    """

    id: UUID
    type: str
    subject: str
    time: datetime
    schema_version: int
    payload: bytes
    trace_id: str = ""
    # The payload is sealed with the subject's data key (see `tipwise.events.shredding`); consumers
    # and readers only ever get events with `encrypted` false.
    encrypted: bool = False

    @classmethod
    def create(
        cls,
        *,
        type: str,
        subject: str,
        time: datetime,
        data: Mapping[str, Any] | None = None,
        message: Message | None = None,
        schema_version: int = 1,
        trace_id: str = "",
    ) -> Event:
        """Return a new event with a fresh id; the payload is `message`, or `data` converted to the type's message.

        Raises UnknownEventType for a type without a payload message, and
        `payloads.PayloadError` (a ValueError) naming the field when `data`
        does not fit the message.
        """
        if time.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        expected = payload_type(type)
        if (data is None) == (message is None):
            raise TypeError("pass exactly one of data= and message=")
        if message is None:
            message = payloads.from_dict(expected(), data or {})
        elif not isinstance(message, expected):
            raise TypeError(
                f"a {type!r} event carries {expected.DESCRIPTOR.full_name}, not {message.DESCRIPTOR.full_name}"
            )
        return cls(
            id=new_id(),
            type=type,
            subject=subject,
            time=time,
            schema_version=schema_version,
            # Deterministic: map entries in key order, so equal payloads are equal bytes.
            payload=message.SerializeToString(deterministic=True),
            trace_id=trace_id,
        )

    @overload
    def message(self) -> Message: ...

    @overload
    def message(self, expected: builtins.type[M]) -> M: ...

    def message(self, expected: builtins.type[Message] | None = None) -> Message:
        """Return the decoded payload message; with `expected`, check the event carries that message type."""
        actual = payload_type(self.type)
        if self.encrypted:
            raise ValueError(f"event {self.id} is sealed with its subject's data key; the bus opens it")
        if expected is not None and expected is not actual:
            raise TypeError(
                f"a {self.type!r} event carries {actual.DESCRIPTOR.full_name}, not {expected.DESCRIPTOR.full_name}"
            )
        return actual.FromString(self.payload)

    def data(self) -> dict[str, Any]:
        """Return the decoded payload as a dict (see `tipwise.events.payloads` for its form)."""
        return payloads.to_dict(self.message())

    def to_envelope(self) -> bytes:
        """Return the event as a serialized `tipwise.events.v1.Envelope`."""
        envelope = messages.Envelope(
            id=str(self.id),
            type=self.type,
            subject=self.subject,
            time=payloads.to_timestamp(self.time),
            schema_version=self.schema_version,
            trace_id=self.trace_id,
            payload=self.payload,
            encrypted=self.encrypted,
        )
        return envelope.SerializeToString(deterministic=True)

    @classmethod
    def from_envelope(cls, raw: bytes) -> Event:
        """Return the event of a serialized `Envelope`; raises ValueError when `raw` is not one.

        An unknown type is accepted here (a newer producer may publish it);
        reading its payload raises UnknownEventType.
        """
        try:
            envelope = messages.Envelope.FromString(raw)
        except DecodeError as exc:
            raise ValueError(f"not an event envelope: {exc}") from None
        if not envelope.type or not envelope.HasField("time"):
            raise ValueError("not an event envelope: it has no type or no time")
        try:
            event_id = UUID(envelope.id)
        except ValueError:
            raise ValueError(f"not an event envelope: id {envelope.id!r} is not a UUID") from None
        return cls(
            id=event_id,
            type=envelope.type,
            subject=envelope.subject,
            time=payloads.from_timestamp(envelope.time),
            schema_version=envelope.schema_version,
            payload=envelope.payload,
            trace_id=envelope.trace_id,
            encrypted=envelope.encrypted,
        )


class Consumer(Protocol):
    """A subscriber that applies events exactly once.

    The bus calls `apply` with a batch of events of the consumer's types that
    it has not applied yet, inside the transaction that records them as
    applied, so the effect and the tracking rows commit together. Then it
    calls `committed`, or `aborted` when the transaction rolled back, so a
    consumer holding state in memory can publish it or drop it.
    """

    @property
    def name(self) -> str: ...

    @property
    def event_types(self) -> frozenset[str]: ...

    def apply(self, session: WriteSession, batch: Sequence[Event]) -> None: ...

    def committed(self) -> None: ...

    def aborted(self) -> None: ...
