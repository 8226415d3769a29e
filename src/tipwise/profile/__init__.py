"""Profile: preferences (time zone, muted categories)."""

from tipwise.profile.contracts import Preferences, PreferencesOut, PreferencesPatch, validate_timezone
from tipwise.profile.endpoints import build_router
from tipwise.profile.facade import ProfileFacade

__all__ = ["Preferences", "PreferencesOut", "PreferencesPatch", "ProfileFacade", "build_router", "validate_timezone"]
