"""The event envelope and the event types Tipwise publishes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

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


@dataclass(frozen=True, kw_only=True)
class Event:
    """An envelope: who it is about (`subject`), what happened (`type`), and the payload bytes.

    Payloads are JSON today; the envelope keeps them as bytes so a Protobuf
    encoding can replace JSON without changing the log or the bus.
    """

    id: UUID
    type: str
    subject: str
    time: datetime
    schema_version: int
    payload: bytes

    @classmethod
    def create(cls, *, type: str, subject: str, time: datetime, data: dict[str, Any], schema_version: int = 1) -> Event:
        """Return a new event with a fresh id and `data` encoded as the payload."""
        if time.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        encoded = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        return cls(id=new_id(), type=type, subject=subject, time=time, schema_version=schema_version, payload=encoded)

    def data(self) -> dict[str, Any]:
        """Return the decoded payload."""
        decoded: dict[str, Any] = orjson.loads(self.payload)
        return decoded


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
