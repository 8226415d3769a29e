"""Pure rules of the advice library: what a tip is and when it applies."""

from tipwise.advice.domain.tips import Category, Condition, Effort, TimeOfDay, Tip, time_of_day

__all__ = ["Category", "Condition", "Effort", "TimeOfDay", "Tip", "time_of_day"]
