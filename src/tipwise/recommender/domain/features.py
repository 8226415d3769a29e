"""The features a decision is made on: about the moment, the person, and each tip."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tipwise.advice import Category, Effort, TimeOfDay, Tip, time_of_day
from tipwise.ml.serving import FeatureSpec
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.domain.reactions import Reaction

_TIMES = tuple(TimeOfDay)
_CATEGORIES = tuple(Category)
_REACTIONS = tuple(Reaction)
MAX_MINUTES = 120

# The "send nothing" candidate: choosing it means not interrupting the person now.
SEND_NOTHING = "send-nothing"

SHARED = ("bias", *(f"tod={t}" for t in _TIMES), "weekend", "work_hours")
CATEGORY_ONE_HOT = tuple(f"category={c}" for c in _CATEGORIES)
ACTION = (
    "send_nothing",
    *CATEGORY_ONE_HOT,
    *(f"effort={e}" for e in Effort),
    "minutes",
    "fits_time_of_day",
    "user_category_shown",
    *(f"user_category_{r}" for r in _REACTIONS),
)

FEATURE_SPEC = FeatureSpec(
    name="tipwise.tips/v2",
    shared=SHARED,
    action=ACTION,
    action_cross=("send_nothing", *CATEGORY_ONE_HOT),
    normalize=True,
)


@dataclass(frozen=True, kw_only=True)
class CategoryStats:
    """How a person has reacted to one category so far."""

    shown: int = 0
    reactions: Counter[Reaction] = field(default_factory=Counter)

    def rate(self, reaction: Reaction) -> float:
        # The +1 keeps a single reaction from reading as certainty.
        return self.reactions[reaction] / (self.shown + 1)


def category_stats(history: Iterable[PastShow]) -> dict[Category, CategoryStats]:
    """Summarize a person's history per category."""
    shown: Counter[Category] = Counter()
    reactions: dict[Category, Counter[Reaction]] = {}
    for show in history:
        shown[show.category] += 1
        if show.reaction is not None:
            reactions.setdefault(show.category, Counter())[show.reaction] += 1
    return {c: CategoryStats(shown=shown[c], reactions=reactions.get(c, Counter())) for c in shown}


@dataclass(frozen=True, kw_only=True)
class Context:
    """Everything a policy sees for one decision: shared features and one feature map per candidate."""

    shared: dict[str, float]
    actions: dict[str, dict[str, float]]

    def snapshot(self) -> dict[str, object]:
        """Return the JSON form stored with the decision (train/serve parity)."""
        return {"feature_spec": FEATURE_SPEC.name, "shared": self.shared, "actions": self.actions}


class FeatureAssembler:
    """Builds the decision context from the local time, the person's history and the candidates.

    A tip's own features never change, so they are computed once per tip and
    reused; the person's features are computed once per category.
    """

    def __init__(self) -> None:
        self._static: dict[str, tuple[Tip, dict[str, float]]] = {}

    def assemble(
        self, *, local_now: datetime, history: Sequence[PastShow], tips: Sequence[Tip], allow_nothing: bool = False
    ) -> Context:
        moment = time_of_day(local_now)
        weekend = local_now.weekday() >= 5
        shared = {"bias": 1.0, f"tod={moment}": 1.0}
        if weekend:
            shared["weekend"] = 1.0
        if not weekend and 9 <= local_now.hour < 17:
            shared["work_hours"] = 1.0
        stats = category_stats(history)
        personal = {category: self._personal(stats.get(category, CategoryStats())) for category in _CATEGORIES}
        actions = {}
        for tip in tips:
            features = {**self._static_features(tip), **personal[tip.category]}
            if moment in tip.times_of_day:
                features["fits_time_of_day"] = 1.0
            actions[tip.id] = features
        if allow_nothing:
            actions[SEND_NOTHING] = {"send_nothing": 1.0}
        return Context(shared=shared, actions=actions)

    def _static_features(self, tip: Tip) -> dict[str, float]:
        # Keyed by id, checked by identity: hashing the whole frozen tip costs more than the lookup saves.
        cached = self._static.get(tip.id)
        if cached is not None and cached[0] is tip:
            return cached[1]
        features = {
            f"category={tip.category}": 1.0,
            f"effort={tip.effort}": 1.0,
            "minutes": round(math.log1p(min(tip.minutes, MAX_MINUTES)) / math.log1p(MAX_MINUTES), 6),
        }
        self._static[tip.id] = (tip, features)
        return features

    @staticmethod
    def _personal(stats: CategoryStats) -> dict[str, float]:
        features = {"user_category_shown": round(math.log1p(stats.shown) / 5.0, 6)}
        for reaction in _REACTIONS:
            rate = stats.rate(reaction)
            if rate:
                features[f"user_category_{reaction}"] = round(rate, 6)
        return features
