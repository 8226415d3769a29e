"""HTTP routes of the auth module and the bearer-token dependency for every other route."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

from tipwise.auth.contracts import AccountOut, Principal, RegisterRequest, TokenOut
from tipwise.auth.facade import AuthFacade
from tipwise.kernel.errors import Unauthorized
from tipwise.kernel.http import problem_responses

TOKEN_URL = "/v1/auth/token"  # noqa: S105 - a route, not a secret
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def principal_dependency(facade: AuthFacade) -> Callable[[str | None], Principal]:
    """Return a dependency that resolves the caller from `Authorization: Bearer ...`."""

    def current_principal(token: Annotated[str | None, Depends(_bearer)]) -> Principal:
        if not token:
            raise Unauthorized("this endpoint needs a bearer token from POST /v1/auth/token")
        return facade.verify_token(token=token)

    return current_principal


def build_router(facade: AuthFacade) -> APIRouter:
    router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=problem_responses(422))

    @router.post(
        "/register", status_code=status.HTTP_201_CREATED, response_model=AccountOut, responses=problem_responses(409)
    )
    def register(body: RegisterRequest) -> AccountOut:
        """Create a local account."""
        account = facade.register(email=body.email, password=body.password)
        return AccountOut(id=account.id, email=account.email, role=account.role, created_at=account.created_at)

    @router.post("/token", response_model=TokenOut, responses=problem_responses(401))
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
        """Exchange email (as `username`) and password for a bearer access token."""
        account = facade.authenticate(email=form.username, password=form.password)
        return TokenOut(access_token=facade.issue_token(account=account), expires_in=facade.token_ttl_seconds)

    return router
