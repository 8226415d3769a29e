"""HTTP routes of the profile module."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from tipwise.auth import Principal
from tipwise.kernel.http import problem_responses
from tipwise.profile.contracts import ConsentsOut, ConsentsPut, PreferencesOut, PreferencesPatch
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

    @router.get("/consents", response_model=ConsentsOut)
    def get_consents(user: CurrentUser) -> ConsentsOut:
        """Return your consent per purpose, the current wording, and the full ledger of your decisions."""
        return ConsentsOut.of(facade.consents(user_id=user.user_id))

    @router.put("/consents", response_model=ConsentsOut)
    def put_consents(body: ConsentsPut, user: CurrentUser) -> ConsentsOut:
        """Grant or withdraw purposes, naming the wording version you were shown.

        Each change is appended to the ledger (history is never rewritten); a
        purpose left out keeps its state; repeating the same request changes nothing.
        """
        return ConsentsOut.of(facade.record_consents(user_id=user.user_id, decisions=body))

    return router
