"""HTTP routes of the auth module and the bearer-token dependency for every other route."""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from tipwise.auth.contracts import AccountOut, Principal, RegisterRequest, SessionOut, TokenOut
from tipwise.auth.facade import AuthFacade
from tipwise.kernel.errors import Unauthorized
from tipwise.kernel.http import problem_responses

TOKEN_URL = "/v1/auth/token"  # noqa: S105 - a route, not a secret
REFRESH_URL = "/v1/auth/refresh"
# The routes that answer without a bearer token.
PUBLIC_ROUTES = frozenset({"/v1/auth/register", TOKEN_URL, REFRESH_URL})
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, refreshUrl=REFRESH_URL, auto_error=False)


def principal_dependency(facade: AuthFacade) -> Callable[[str | None], Awaitable[Principal]]:
    """Return a dependency that resolves the caller from `Authorization: Bearer ...`.

    It runs on the event loop: a session in this process's cache is resolved there, and only a
    lookup in the database goes to the thread pool (a hop on every request costs more than
    checking the token). On SQLite the loop reads the session itself too: a read of a local file
    costs less than the hop, and a thread that wakes for each statement of the lookup waits for
    the GIL while the loop decides (`tipwise bench http`: such a request took ~6-12 ms more).
    Only writing the session's last use (once a minute per session) goes to a thread there.
    """
    read = facade.reads_locally

    async def current_principal(token: Annotated[str | None, Depends(_bearer)]) -> Principal:
        if not token:
            raise Unauthorized("this endpoint needs a bearer token from POST /v1/auth/token")
        principal = facade.cached_principal(token=token, read=read)
        if principal is None:
            principal = await run_in_threadpool(partial(facade.verify_token, token=token))
        return principal

    return current_principal


def client_of(request: Request) -> tuple[str | None, str | None]:
    """Return the client's user agent and IP address (uvicorn takes it from X-Forwarded-For for FORWARDED_ALLOW_IPS)."""
    return request.headers.get("user-agent"), request.client.host if request.client else None


def build_router(facade: AuthFacade) -> APIRouter:
    router = APIRouter(tags=["auth"], responses=problem_responses(422))
    CurrentUser = Annotated[Principal, Depends(principal_dependency(facade))]

    @router.post(
        "/v1/auth/register",
        status_code=status.HTTP_201_CREATED,
        response_model=AccountOut,
        responses=problem_responses(409),
    )
    def register(body: RegisterRequest) -> AccountOut:
        """Create a local account."""
        account = facade.register(email=body.email, password=body.password)
        return AccountOut(id=account.id, email=account.email, role=account.role, created_at=account.created_at)

    @router.post(TOKEN_URL, response_model=TokenOut, responses=problem_responses(401, 429))
    def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """Sign in: exchange email (as `username`) and password for an access token and a refresh token.

        Each sign-in starts a session (see `GET /v1/me/sessions`). After too many failures for the
        email or from the client's address the answer is `429` with `Retry-After`, even for the
        right password.
        """
        user_agent, ip = client_of(request)
        issued = facade.login(email=form.username, password=form.password, user_agent=user_agent, ip=ip)
        return TokenOut.of(issued)

    @router.post(REFRESH_URL, response_model=TokenOut, responses=problem_responses(401))
    def refresh(
        grant_type: Annotated[Literal["refresh_token"], Form(description="Always `refresh_token`.")],
        refresh_token: Annotated[str, Form(max_length=200)],
    ) -> TokenOut:
        """Exchange a refresh token for a new access token and a new refresh token (the old one stops working).

        Presenting a refresh token that was already exchanged revokes its session: every token of
        it stops working.
        """
        return TokenOut.of(facade.refresh(refresh_token=refresh_token))

    @router.post(
        "/v1/auth/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=problem_responses(401),
    )
    def logout(user: CurrentUser) -> Response:
        """Sign out: revoke the session of this access token (its refresh token stops working too)."""
        facade.logout(principal=user)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/v1/me/sessions", response_model=list[SessionOut], responses=problem_responses(401))
    def sessions(user: CurrentUser) -> list[SessionOut]:
        """List your live sessions, most recently used first; `current` marks this token's."""
        return [SessionOut.of(info, current=user.session_id) for info in facade.sessions(user_id=user.user_id)]

    @router.delete(
        "/v1/me/sessions/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=problem_responses(401, 404),
    )
    def revoke_session(session_id: UUID, user: CurrentUser) -> Response:
        """Revoke one of your sessions: its tokens stop working (`404` for an id that is not one of yours)."""
        facade.revoke_session(user_id=user.user_id, session_id=session_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
