"""Public DTOs and events of the recommender."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tipwise import events
from tipwise.advice import Category, Effort, Tip
from tipwise.recommender.domain.reactions import Reaction

# -- events -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TipDecided:
    """Payload of `tip.decided`: what the learner needs to learn from the reaction later."""

    tip_instance_id: UUID
    user_id: UUID
    tip_id: str
    policy: str
    model_version: int
    feature_spec: str
    shared: dict[str, float]
    action: dict[str, float]
    propensity: float
    decided_at: datetime
    # The consents in force at decision time. The learner learns only from decisions made with both:
    # without personalization nothing is learned from the person; without model_training their
    # examples stay out of the shared model. Events logged before these fields existed read as True.
    personalized: bool = True
    model_training: bool = True

    def to_data(self) -> dict[str, Any]:
        return {
            "tip_instance_id": str(self.tip_instance_id),
            "user_id": str(self.user_id),
            "tip_id": self.tip_id,
            "policy": self.policy,
            "model_version": self.model_version,
            "feature_spec": self.feature_spec,
            "shared": self.shared,
            "action": self.action,
            "propensity": self.propensity,
            "decided_at": self.decided_at.isoformat(),
            "personalized": self.personalized,
            "model_training": self.model_training,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TipDecided:
        return cls(
            tip_instance_id=UUID(data["tip_instance_id"]),
            user_id=UUID(data["user_id"]),
            tip_id=data["tip_id"],
            policy=data["policy"],
            model_version=int(data["model_version"]),
            feature_spec=data["feature_spec"],
            shared={k: float(v) for k, v in data["shared"].items()},
            action={k: float(v) for k, v in data["action"].items()},
            propensity=float(data["propensity"]),
            decided_at=datetime.fromisoformat(data["decided_at"]),
            personalized=bool(data.get("personalized", True)),
            model_training=bool(data.get("model_training", True)),
        )

    @property
    def learnable(self) -> bool:
        return self.personalized and self.model_training

    def to_message(self) -> events.messages.TipDecided:
        message = events.messages.TipDecided(
            tip_instance_id=str(self.tip_instance_id),
            user_id=str(self.user_id),
            tip_id=self.tip_id,
            policy=self.policy,
            model_version=self.model_version,
            feature_spec=self.feature_spec,
            propensity=self.propensity,
            decided_at=events.to_timestamp(self.decided_at),
            personalized=self.personalized,
            model_training=self.model_training,
        )
        # update() fills a map faster than the constructor does (this is on the decision path).
        message.shared.update(self.shared)
        message.action.update(self.action)
        return message

    @classmethod
    def from_message(cls, message: events.messages.TipDecided) -> TipDecided:
        return cls(
            tip_instance_id=UUID(message.tip_instance_id),
            user_id=UUID(message.user_id),
            tip_id=message.tip_id,
            policy=message.policy,
            model_version=message.model_version,
            feature_spec=message.feature_spec,
            shared=_features(message.shared),
            action=_features(message.action),
            propensity=message.propensity,
            decided_at=events.from_timestamp(message.decided_at),
            personalized=message.personalized if message.HasField("personalized") else True,
            model_training=message.model_training if message.HasField("model_training") else True,
        )


@dataclass(frozen=True, kw_only=True)
class FeedbackReaction:
    """Payload of `feedback.reaction`."""

    tip_instance_id: UUID
    user_id: UUID
    reaction: Reaction
    reacted_at: datetime
    # False when, at reaction time, the person no longer grants personalization and model training:
    # the learner then drops the decision unlearned (a withdrawal also covers decisions still pending).
    learnable: bool = True

    def to_data(self) -> dict[str, Any]:
        return {
            "tip_instance_id": str(self.tip_instance_id),
            "user_id": str(self.user_id),
            "reaction": self.reaction.value,
            "reacted_at": self.reacted_at.isoformat(),
            "learnable": self.learnable,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> FeedbackReaction:
        return cls(
            tip_instance_id=UUID(data["tip_instance_id"]),
            user_id=UUID(data["user_id"]),
            reaction=Reaction(data["reaction"]),
            reacted_at=datetime.fromisoformat(data["reacted_at"]),
            learnable=bool(data.get("learnable", True)),
        )

    def to_message(self) -> events.messages.FeedbackReaction:
        return events.messages.FeedbackReaction(
            tip_instance_id=str(self.tip_instance_id),
            user_id=str(self.user_id),
            reaction=_REACTION_NUMBERS[self.reaction],
            reacted_at=events.to_timestamp(self.reacted_at),
            learnable=self.learnable,
        )

    @classmethod
    def from_message(cls, message: events.messages.FeedbackReaction) -> FeedbackReaction:
        return cls(
            tip_instance_id=UUID(message.tip_instance_id),
            user_id=UUID(message.user_id),
            reaction=_reaction(message.reaction),
            reacted_at=events.from_timestamp(message.reacted_at),
            learnable=message.learnable if message.HasField("learnable") else True,
        )


def _features(features: Mapping[str, float]) -> dict[str, float]:
    # In key order, as the JSON payloads had them: learning sums features in this order. (Iterating
    # the keys of a Protobuf map is much faster than its items().)
    return {name: features[name] for name in sorted(features)}


# Reaction.NOT_FOR_ME <-> REACTION_NOT_FOR_ME in proto/tipwise/events/v1/feedback_reaction.proto.
_REACTION_NUMBERS = {reaction: events.messages.Reaction.Value(f"REACTION_{reaction.name}") for reaction in Reaction}
_REACTIONS = {number: reaction for reaction, number in _REACTION_NUMBERS.items()}


def _reaction(number: events.messages.Reaction.ValueType) -> Reaction:
    try:
        return _REACTIONS[number]
    except KeyError:
        raise ValueError(f"feedback.reaction carries no known reaction (enum value {number})") from None


@dataclass(frozen=True, kw_only=True)
class ShadowChoice:
    """What a shadow policy would have chosen for a logged decision."""

    policy: str
    model_version: int
    action: str
    probabilities: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class LoggedDecision:
    """One decision as logged, with its outcome so far: the input of off-policy evaluation."""

    tip_instance_id: UUID
    user_id: UUID
    decided_at: datetime
    policy: str
    model_version: int
    feature_spec: str
    shared: dict[str, float]
    actions: dict[str, dict[str, float]]
    action: str
    propensity: float
    probabilities: dict[str, float]
    shadows: tuple[ShadowChoice, ...]
    explored: bool
    reaction: Reaction | None
    reacted_at: datetime | None
    # Whether the person granted model training at decision time (true for decisions logged before consents).
    model_training: bool = True


# -- HTTP ---------------------------------------------------------------------


class TipOut(BaseModel):
    id: str
    title: str
    body: str
    category: Category
    effort: Effort
    minutes: int

    @classmethod
    def of(cls, tip: Tip) -> TipOut:
        return cls(
            id=tip.id, title=tip.title, body=tip.body, category=tip.category, effort=tip.effort, minutes=tip.minutes
        )


class NextTipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    explore: bool = Field(default=True, description="False: no exploration for this decision (logged as such).")
    allow_nothing: bool = Field(
        default=False,
        description="Let the policy choose not to send a tip now (for notifiers); the choice is logged and learned.",
    )


class NextTipOut(BaseModel):
    tip_instance_id: UUID
    tip: TipOut | None = Field(description="The tip to show; null when the policy chose to send nothing.")
    send_nothing: bool = False
    policy: str
    model_version: int
    propensity: float = Field(description="Probability with which the live policy chose this tip.")
    confidence: float = Field(description="1 / (1 + width of the chosen tip's confidence bound); 0 for random.")
    explored: bool
    personalized: bool = Field(
        description="False: decided without the personalization consent, on context and tip features only."
    )
    decided_at: datetime


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tip_instance_id: UUID
    reaction: Reaction
    idempotency_key: str = Field(min_length=1, max_length=200)


class FeedbackOut(BaseModel):
    tip_instance_id: UUID
    reaction: Reaction
    idempotency_key: str
    recorded_at: datetime


class HistoryItem(BaseModel):
    tip_instance_id: UUID
    tip: TipOut
    decided_at: datetime
    reaction: Reaction | None
    reacted_at: datetime | None


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page; null at the end.")
