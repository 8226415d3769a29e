"""What a person can say about a tip."""

from __future__ import annotations

from enum import StrEnum


class Reaction(StrEnum):
    DONE = "done"
    SNOOZE = "snooze"
    DISMISS = "dismiss"
    NOT_FOR_ME = "not_for_me"
