"""Profile: preferences (time zone, active and quiet hours, muted categories, cap, channels) and consents."""

from tipwise.profile.contracts import (
    CONSENT_WORDING_VERSION,
    CONSENT_WORDINGS,
    ActiveWindow,
    Channel,
    ConsentEntry,
    ConsentPort,
    Consents,
    ConsentSource,
    ConsentsOut,
    ConsentsPut,
    Preferences,
    PreferencesOut,
    PreferencesPatch,
    Purpose,
    QuietHours,
    TimeWindow,
    Weekday,
    validate_timezone,
)
from tipwise.profile.endpoints import build_router
from tipwise.profile.facade import ProfileFacade
from tipwise.profile.privacy import ProfilePersonalData

__all__ = [
    "CONSENT_WORDINGS",
    "CONSENT_WORDING_VERSION",
    "ActiveWindow",
    "Channel",
    "ConsentEntry",
    "ConsentPort",
    "ConsentSource",
    "Consents",
    "ConsentsOut",
    "ConsentsPut",
    "Preferences",
    "PreferencesOut",
    "PreferencesPatch",
    "ProfileFacade",
    "ProfilePersonalData",
    "Purpose",
    "QuietHours",
    "TimeWindow",
    "Weekday",
    "build_router",
    "validate_timezone",
]
