"""Recommender: candidates -> features -> policy -> tip, feedback, history."""

from tipwise.recommender.contracts import (
    FeedbackOut,
    FeedbackReaction,
    FeedbackRequest,
    HistoryItem,
    HistoryPage,
    LoggedDecision,
    NextTipOut,
    ShadowChoice,
    TipDecided,
    TipOut,
)
from tipwise.recommender.domain.features import FEATURE_SPEC
from tipwise.recommender.domain.reactions import Reaction
from tipwise.recommender.endpoints import build_router
from tipwise.recommender.facade import RecommenderFacade
from tipwise.recommender.privacy import RecommenderPersonalData
from tipwise.recommender.settings import RecommenderSettings

__all__ = [
    "FEATURE_SPEC",
    "FeedbackOut",
    "FeedbackReaction",
    "FeedbackRequest",
    "HistoryItem",
    "HistoryPage",
    "LoggedDecision",
    "NextTipOut",
    "Reaction",
    "RecommenderFacade",
    "RecommenderPersonalData",
    "RecommenderSettings",
    "ShadowChoice",
    "TipDecided",
    "TipOut",
    "build_router",
]
