"""HTTP routes of the profile module."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from tipwise.auth import Principal
from tipwise.kernel.http import problem_responses
from tipwise.profile.contracts import PreferencesOut, PreferencesPatch
from tipwise.profile.facade import ProfileFacade


def build_router(facade: ProfileFacade, principal: Callable[..., Any]) -> APIRouter:
    router = APIRouter(prefix="/v1/me", tags=["profile"], responses=problem_responses(401, 422))
    CurrentUser = Annotated[Principal, Depends(principal)]

    @router.get("/preferences", response_model=PreferencesOut)
    def get_preferences(user: CurrentUser) -> PreferencesOut:
        """Return your preferences."""
        return PreferencesOut.of(facade.preferences(user_id=user.user_id))

    @router.patch("/preferences", response_model=PreferencesOut)
    def patch_preferences(patch: PreferencesPatch, user: CurrentUser) -> PreferencesOut:
        """Change some of your preferences; fields you leave out keep their value."""
        return PreferencesOut.of(facade.update_preferences(user_id=user.user_id, patch=patch))

    return router
