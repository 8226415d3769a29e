"""Advice: the curated library of tips."""

from tipwise.advice.domain import Category, Condition, Effort, TimeOfDay, Tip, time_of_day
from tipwise.advice.facade import AdviceFacade
from tipwise.advice.loader import DEFAULT_LIBRARY, AdviceLibraryError, Library, load_library

__all__ = [
    "DEFAULT_LIBRARY",
    "AdviceFacade",
    "AdviceLibraryError",
    "Category",
    "Condition",
    "Effort",
    "Library",
    "TimeOfDay",
    "Tip",
    "load_library",
    "time_of_day",
]
