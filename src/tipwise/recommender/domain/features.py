"""The features a decision is made on: about the moment, the person, and each tip.

Purpose binding: every feature is declared with the consent purpose it needs
(`FEATURE_PURPOSES`). The assembler computes a group of features only when its
purpose is granted, and then drops any feature whose purpose is not granted, so
the context a policy sees, the `context_snapshot` stored with the decision and
the `tip.decided` event never hold a feature the person has not consented to.

| features                                             | purpose           |
|------------------------------------------------------|-------------------|
| bias, tod=*, weekend, work_hours (local time)        | none: context     |
| category=*, effort=*, minutes, fits_time_of_day      | none: the tip     |
| send_nothing                                         | none: the option  |
| user_category_shown, user_category_<reaction>        | personalization   |
| busy_now, minutes_to_next_event, free_block_minutes  | calendar_signals  |

The local time comes from the time zone the person set to use the service at
all, and says nothing learned about them, so it needs no consent. The calendar
features come from the busy intervals of a connected calendar (the
integrations module), read only with the calendar-signals consent; a person
with no calendar read gets none of them (absent, not "free"). Activity
features, once a connector exists, go into a group declared with
`Purpose.ACTIVITY_SIGNALS`.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from tipwise.advice import Category, Effort, TimeOfDay, Tip, time_of_day
from tipwise.ml.serving import CandidateSet, FeatureSpec
from tipwise.profile import Purpose
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.domain.reactions import Reaction

_TIMES = tuple(TimeOfDay)
_CATEGORIES = tuple(Category)
_REACTIONS = tuple(Reaction)
_CATEGORY_ROWS = {category: row for row, category in enumerate(_CATEGORIES)}
MAX_MINUTES = 120
# Calendar features look this far ahead; a longer gap reads as "free for a long while".
CALENDAR_HORIZON_MINUTES = 240

# The "send nothing" candidate: choosing it means not interrupting the person now.
SEND_NOTHING = "send-nothing"

CALENDAR_FEATURES = ("busy_now", "minutes_to_next_event", "free_block_minutes")
SHARED = ("bias", *(f"tod={t}" for t in _TIMES), "weekend", "work_hours", *CALENDAR_FEATURES)
CATEGORY_ONE_HOT = tuple(f"category={c}" for c in _CATEGORIES)
TIP_FEATURES = ("send_nothing", *CATEGORY_ONE_HOT, *(f"effort={e}" for e in Effort), "minutes", "fits_time_of_day")
PERSONAL_FEATURES = ("user_category_shown", *(f"user_category_{r}" for r in _REACTIONS))
ACTION = (*TIP_FEATURES, *PERSONAL_FEATURES)

# The consent purpose each feature needs; None: about the moment or the tip, no consent needed.
FEATURE_PURPOSES: dict[str, Purpose | None] = {
    **dict.fromkeys(SHARED, None),
    **dict.fromkeys(CALENDAR_FEATURES, Purpose.CALENDAR_SIGNALS),
    **dict.fromkeys(TIP_FEATURES, None),
    **dict.fromkeys(PERSONAL_FEATURES, Purpose.PERSONALIZATION),
}


class UndeclaredFeature(ValueError):
    """A feature was built without declaring the purpose it needs: a programming error, never served."""


def bind(features: dict[str, float], granted: frozenset[Purpose]) -> dict[str, float]:
    """Return `features` without those whose purpose is not in `granted`; raise on an undeclared feature."""
    kept = {}
    for name, value in features.items():
        try:
            purpose = FEATURE_PURPOSES[name]
        except KeyError:
            raise UndeclaredFeature(f"feature {name!r} has no declared consent purpose") from None
        if purpose is None or purpose in granted:
            kept[name] = value
    return kept


# v3 hashes the features to 32 shared and 64 action positions, so a feature added later (a
# connector's own) reaches the same models without a new spec, and adds the calendar features.
# The seed is the first under which no two declared names share a position
# (`collision_free_seed`); a test keeps it so. Models learned on v2 are not loaded into v3: the
# learner starts them afresh (its stored models record their feature spec), and decisions logged
# under v2 keep their own spec name, so evaluation never mixes the two layouts.
FEATURE_SPEC = FeatureSpec(
    name="tipwise.tips/v3",
    shared=SHARED,
    action=ACTION,
    action_cross=("send_nothing", *CATEGORY_ONE_HOT),
    normalize=True,
    shared_bits=5,
    action_bits=6,
    seed=325,
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
    # The purposes the person granted when the features were built (an audit trail of the binding).
    purposes: frozenset[Purpose] = frozenset()
    # `actions`' values in order, with their vectors made from rows kept per tip: what the policies score.
    candidates: CandidateSet | None = field(default=None, repr=False, compare=False)

    @property
    def personalized(self) -> bool:
        return Purpose.PERSONALIZATION in self.purposes

    def snapshot(self) -> dict[str, object]:
        """Return the JSON form stored with the decision (train/serve parity)."""
        return {
            "feature_spec": FEATURE_SPEC.name,
            "shared": self.shared,
            "actions": self.actions,
            "purposes": sorted(self.purposes),
        }


def calendar_features(now: datetime, busy: Sequence[tuple[datetime, datetime]]) -> dict[str, float]:
    """Return the calendar features at `now` from busy intervals (sorted by start, UTC or any zone).

    `busy_now` is 1 inside a busy interval; `minutes_to_next_event` is the
    time until the next interval starts, and `free_block_minutes` the free
    time from now until the next busy one (0 while busy); both are capped at
    `CALENDAR_HORIZON_MINUTES` and scaled to [0, 1] on a log scale, so that
    the difference between 5 and 30 minutes counts more than between 3 and 4
    hours. A feature whose value is 0 is left out, like every other feature.
    """
    busy_now = any(start <= now < end for start, end in busy)
    upcoming = [start for start, _ in busy if start > now]
    to_next = min(((min(upcoming) - now).total_seconds() / 60.0), CALENDAR_HORIZON_MINUTES) if upcoming else None
    features: dict[str, float] = {}
    if busy_now:
        features["busy_now"] = 1.0
    horizon = CALENDAR_HORIZON_MINUTES if to_next is None else to_next
    features["minutes_to_next_event"] = _scaled(horizon)
    if not busy_now:
        features["free_block_minutes"] = _scaled(horizon)
    return {name: value for name, value in features.items() if value}


def _scaled(minutes: float) -> float:
    return round(math.log1p(max(minutes, 0.0)) / math.log1p(CALENDAR_HORIZON_MINUTES), 6)


class FeatureAssembler:
    """Builds the decision context from the local time, the person's history and the candidates.

    A tip's own features never change, so they are computed once per tip and
    reused, and so is their hashed row; the person's features are computed
    once per category, and only with the personalization consent (see the
    module docstring). The context's `candidates` add this decision's personal
    and time-of-day rows to the kept tip rows: the same vectors as hashing
    `actions` (tested), at a fraction of the cost.
    """

    def __init__(self, spec: FeatureSpec = FEATURE_SPEC) -> None:
        self._spec = spec
        self._static: dict[str, tuple[Tip, dict[str, float], int]] = {}
        # The hashed row of every tip's own features, in order of first sight; grown under the lock.
        self._rows = np.zeros((0, spec.action_width))
        self._lock = threading.Lock()

    def assemble(
        self,
        *,
        local_now: datetime,
        history: Sequence[PastShow],
        tips: Sequence[Tip],
        purposes: frozenset[Purpose],
        allow_nothing: bool = False,
        busy: Sequence[tuple[datetime, datetime]] | None = None,
    ) -> Context:
        """Return the context for a decision, holding only features whose purpose is in `purposes`.

        `busy` is the person's busy intervals around now from a connected
        calendar (None: no calendar); used only with `Purpose.CALENDAR_SIGNALS`.
        """
        moment = time_of_day(local_now)
        weekend = local_now.weekday() >= 5
        shared = {"bias": 1.0, f"tod={moment}": 1.0}
        if weekend:
            shared["weekend"] = 1.0
        if not weekend and 9 <= local_now.hour < 17:
            shared["work_hours"] = 1.0
        if busy is not None and Purpose.CALENDAR_SIGNALS in purposes:
            shared.update(calendar_features(local_now, busy))
        # Each part is bound on its own, once: the parts' names are disjoint, so this binds every tip's whole map.
        personal: dict[Category, dict[str, float]] = {category: {} for category in _CATEGORIES}
        if Purpose.PERSONALIZATION in purposes:
            stats = category_stats(history)
            personal = {
                category: bind(self._personal(stats.get(category, CategoryStats())), purposes)
                for category in _CATEGORIES
            }
        fits = bind({"fits_time_of_day": 1.0}, purposes)
        actions = {}
        rows: list[int] = []
        fitting: list[int] = []
        for tip in tips:
            static, row = self._static_features(tip)
            features = {**static, **personal[tip.category]}
            if moment in tip.times_of_day:
                features.update(fits)
                fitting.append(len(rows))
            actions[tip.id] = features
            rows.append(row)
        if allow_nothing:
            actions[SEND_NOTHING] = bind({"send_nothing": 1.0}, purposes)
        matrix = self._rows[rows]
        if Purpose.PERSONALIZATION in purposes:
            by_category = self._spec.action_matrix([personal[category] for category in _CATEGORIES])
            matrix += by_category[[_CATEGORY_ROWS[tip.category] for tip in tips]]
        for name, value in fits.items():
            matrix[fitting, self._spec.action_index(name)] += value
        if allow_nothing:
            matrix = np.vstack([matrix, self._spec.action_matrix([actions[SEND_NOTHING]])])
        candidates = CandidateSet(self._spec, list(actions.values()), action=matrix)
        return Context(shared=bind(shared, purposes), actions=actions, purposes=purposes, candidates=candidates)

    def _static_features(self, tip: Tip) -> tuple[dict[str, float], int]:
        # Keyed by id, checked by identity: hashing the whole frozen tip costs more than the lookup saves.
        cached = self._static.get(tip.id)
        if cached is not None and cached[0] is tip:
            return cached[1], cached[2]
        features = {
            f"category={tip.category}": 1.0,
            f"effort={tip.effort}": 1.0,
            "minutes": round(math.log1p(min(tip.minutes, MAX_MINUTES)) / math.log1p(MAX_MINUTES), 6),
        }
        # Kept for every decision whatever the consents: so a tip's own features must need none.
        if bind(features, frozenset()) != features:
            raise UndeclaredFeature(f"a feature of tip {tip.id!r} needs a consent purpose; it cannot be kept per tip")
        with self._lock:
            row = len(self._rows)
            # The rows grow before the index is published, so a reader never gets an index past them.
            self._rows = np.vstack([self._rows, self._spec.action_matrix([features])])
            self._static[tip.id] = (tip, features, row)
        return features, row

    @staticmethod
    def _personal(stats: CategoryStats) -> dict[str, float]:
        features = {"user_category_shown": round(math.log1p(stats.shown) / 5.0, 6)}
        for reaction in _REACTIONS:
            rate = stats.rate(reaction)
            if rate:
                features[f"user_category_{reaction}"] = round(rate, 6)
        return features
