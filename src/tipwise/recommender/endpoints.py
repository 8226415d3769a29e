"""HTTP routes of the recommender."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status

from tipwise.auth import Principal
from tipwise.kernel.http import problem_responses
from tipwise.recommender.contracts import FeedbackOut, FeedbackRequest, HistoryPage, NextTipOut, NextTipRequest
from tipwise.recommender.facade import RecommenderFacade


def build_router(facade: RecommenderFacade, principal: Callable[..., Any]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["tips"], responses=problem_responses(401, 422))
    CurrentUser = Annotated[Principal, Depends(principal)]

    @router.post(
        "/tips/next",
        response_model=NextTipOut,
        responses={204: {"description": "No tip is eligible right now."}},
    )
    async def next_tip(
        user: CurrentUser, response: Response, body: Annotated[NextTipRequest | None, Body()] = None
    ) -> NextTipOut | Response:
        """Decide the tip to show now (`204` when no tip is eligible)."""
        request = body or NextTipRequest()
        # Async: decisions share group commits instead of each waiting in a thread for the write lock.
        decision = await facade.next_tip_async(
            user_id=user.user_id, explore=request.explore, allow_nothing=request.allow_nothing
        )
        if decision is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return decision

    @router.post("/feedback", response_model=FeedbackOut, responses=problem_responses(404, 409))
    def feedback(body: FeedbackRequest, user: CurrentUser) -> FeedbackOut:
        """Record your reaction to a tip; retrying with the same idempotency_key is safe."""
        return facade.record_feedback(user_id=user.user_id, request=body)

    @router.get("/tips/history", response_model=HistoryPage)
    def history(
        user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HistoryPage:
        """List the tips you were shown, newest first, with your reactions."""
        return facade.history(user_id=user.user_id, limit=limit, cursor=cursor)

    return router
