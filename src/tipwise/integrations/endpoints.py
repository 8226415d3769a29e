"""HTTP routes of the integrations module."""

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Response

from tipwise.auth import Principal
from tipwise.integrations.contracts import IntegrationIn, IntegrationOut
from tipwise.integrations.facade import IntegrationsFacade
from tipwise.kernel.http import problem_responses


def build_router(facade: IntegrationsFacade, principal: Callable[..., Any]) -> APIRouter:
    router = APIRouter(prefix="/v1/integrations", tags=["integrations"], responses=problem_responses(401, 422))
    CurrentUser = Annotated[Principal, Depends(principal)]

    @router.get("", response_model=list[IntegrationOut])
    def list_integrations(user: CurrentUser) -> list[IntegrationOut]:
        """Return your connected calendars and how their last sync went."""
        return facade.connections(user_id=user.user_id)

    @router.post("", status_code=201, response_model=IntegrationOut, responses=problem_responses(409))
    def add_integration(body: IntegrationIn, user: CurrentUser) -> IntegrationOut:
        """Connect a calendar by its secret iCal address; it is read once now, then every few minutes.

        Needs your consent to calendar signals (409 `consent_required` otherwise). An address
        that does not answer with an iCalendar file is refused (422), and nothing is stored.
        Only busy and free times are kept, never what your events are about.
        """
        return facade.add_calendar(user_id=user.user_id, url=body.url)

    @router.delete("/{integration_id}", status_code=204, response_class=Response, responses=problem_responses(404))
    def remove_integration(integration_id: UUID, user: CurrentUser) -> Response:
        """Disconnect a calendar: its address and every busy time read from it are deleted."""
        facade.remove(user_id=user.user_id, integration_id=integration_id)
        return Response(status_code=204)

    return router
