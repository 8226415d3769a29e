"""Web pages: sign up, the consent screen, sign in, the tip card with its four reactions, history,
preferences, sessions.

Pages are rendered on the server; htmx swaps the tip card in place. A signed
cookie carries the id of a server-side session (the same kind the API's tokens
belong to), so the browser shows up under "sessions" and revoking it signs the
browser out. Every form and htmx request carries a CSRF token bound to the cookie.
People sign in with a password or through an OIDC provider
(`/auth/oidc/{provider}/login` and `.../callback`); both start a server-side session.
"""

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware.sessions import SessionMiddleware

from tipwise.advice import Category
from tipwise.auth import (
    AuthFacade,
    IssuedTokens,
    LoginMethod,
    OidcStart,
    Principal,
    RegisterRequest,
    Role,
    client_of,
)
from tipwise.gateway.operations import OperatorView
from tipwise.integrations import ConsentRequired, IntegrationsFacade
from tipwise.kernel.errors import Conflict, InvalidInput, NotFound, TipwiseError, TooManyRequests, Unauthorized
from tipwise.profile import (
    CONSENT_WORDING_VERSION,
    CONSENT_WORDINGS,
    ActiveWindow,
    Channel,
    Consents,
    ConsentSource,
    ConsentsPut,
    PreferencesOut,
    PreferencesPatch,
    ProfileFacade,
    Purpose,
    QuietHours,
    Weekday,
    validate_timezone,
)
from tipwise.recommender import FeedbackRequest, Reaction, RecommenderFacade

HERE = Path(__file__).parent
SESSION_COOKIE = "tipwise_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Binds a started OIDC sign-in to the browser that started it; holds the `state` sent to the provider.
OIDC_STATE_COOKIE = "tipwise_oidc_state"
OIDC_COOKIE_PATH = "/auth/oidc/"
REACTION_LABELS = {
    Reaction.DONE: "Done",
    Reaction.SNOOZE: "Snooze",
    Reaction.DISMISS: "Dismiss",
    Reaction.NOT_FOR_ME: "Not for me",
}

PURPOSE_LABELS = {
    Purpose.PERSONALIZATION: "Personalization",
    Purpose.CALENDAR_SIGNALS: "Calendar",
    Purpose.ACTIVITY_SIGNALS: "Activity",
    Purpose.EMAIL: "Email",
    Purpose.PUSH: "Push notifications",
    Purpose.MODEL_TRAINING: "Improve the shared model",
}

DAY_LABELS = {
    Weekday.MON: "Monday",
    Weekday.TUE: "Tuesday",
    Weekday.WED: "Wednesday",
    Weekday.THU: "Thursday",
    Weekday.FRI: "Friday",
    Weekday.SAT: "Saturday",
    Weekday.SUN: "Sunday",
}
CHANNEL_LABELS = {Channel.IN_APP: "in the app", Channel.EMAIL: "email", Channel.PUSH: "push"}
DAY_OFF = "off"
SCHEDULE_FIELD = "schedule"

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["reaction_labels"] = REACTION_LABELS
templates.env.globals["purpose_labels"] = PURPOSE_LABELS
templates.env.globals["day_labels"] = DAY_LABELS
templates.env.globals["channel_labels"] = CHANNEL_LABELS


class CsrfFailed(TipwiseError):
    status = 403
    code = "csrf_failed"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request whose token does not match the session's."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    # Compare bytes: compare_digest refuses non-ASCII text, which a forged header may carry.
    if not expected or not sent or not secrets.compare_digest(str(expected).encode(), sent.encode()):
        raise CsrfFailed("the form expired or came from another site; reload the page and try again")


class SignInRequired(Exception):
    """Nobody is signed in: a page redirects to the sign-in page, an htmx fragment answers 401 + HX-Redirect."""

    def __init__(self, *, fragment: bool = False) -> None:
        super().__init__("sign in first")
        self.fragment = fragment


def _sign_in_first(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired) and exc.fragment:
        return Response(status_code=401, headers={"HX-Redirect": "/signin"})
    return _to_signin()


_UNRESOLVED = object()


class Visitor:
    """Resolves who is signed in through the cookie's server-side session, once per request."""

    def __init__(self, auth: AuthFacade) -> None:
        self._auth = auth

    def __call__(self, request: Request) -> Principal | None:
        """Return the signed-in person, or None (a revoked or expired session also clears the cookie's id)."""
        known = getattr(request.state, "principal", _UNRESOLVED)
        if known is not _UNRESOLVED:
            return known if isinstance(known, Principal) else None
        principal = None
        raw = request.session.get("sid")
        if raw:
            try:
                principal = self._auth.session_principal(session_id=UUID(str(raw)))
            except ValueError:
                principal = None
            if principal is None:
                request.session.pop("sid", None)
        request.state.principal = principal
        return principal

    async def sending_form(self, request: Request) -> Principal | None:
        """Refuse a state-changing request without the session's CSRF token; then resolve who sent it."""
        await check_csrf(request)
        return await self.resolve(request)

    # The dependencies of the pages: each returns who is signed in, or raises SignInRequired.

    def page(self, request: Request) -> Principal:
        """A page (sync: FastAPI runs it off the event loop, like the page itself)."""
        principal = self(request)
        if principal is None:
            raise SignInRequired
        return principal

    async def form(self, request: Request) -> Principal:
        """A form that changes state: the CSRF token is checked first."""
        principal = await self.sending_form(request)
        if principal is None:
            raise SignInRequired
        return principal

    async def fragment(self, request: Request) -> Principal:
        """An htmx request that changes state: like `form`, answered with a 401 the page follows."""
        principal = await self.sending_form(request)
        if principal is None:
            raise SignInRequired(fragment=True)
        return principal

    async def resolve(self, request: Request) -> Principal | None:
        """Like calling it, off the event loop (a cache miss queries the database)."""
        if getattr(request.state, "principal", _UNRESOLVED) is not _UNRESOLVED:
            return self(request)
        return await run_in_threadpool(self, request)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    found = getattr(request.state, "principal", None)
    principal = found if isinstance(found, Principal) else None
    context.setdefault("signed_in", principal is not None)
    context.setdefault("operator", principal is not None and principal.role is Role.OPERATOR)
    return templates.TemplateResponse(request, name, {"csrf": csrf_token(request), **context}, status_code=status_code)


def _to_signin() -> RedirectResponse:
    return RedirectResponse("/signin", status_code=303)


def _consent_fields(consents: Consents) -> dict[str, Any]:
    """Return what `_consent_fields.html` needs: the current wording and what is granted now."""
    return {
        "wording_version": CONSENT_WORDING_VERSION,
        "wording": CONSENT_WORDINGS[CONSENT_WORDING_VERSION],
        "granted": consents.granted,
    }


async def _consent_decisions(request: Request) -> ConsentsPut:
    """Read the consent form: every purpose shown is decided, ticked or not."""
    form = await request.form()
    ticked = {str(value) for value in form.getlist("granted")}
    shown = CONSENT_WORDINGS.get(str(form.get("wording_version", "")), CONSENT_WORDINGS[CONSENT_WORDING_VERSION])
    return ConsentsPut(
        wording_version=str(form.get("wording_version", CONSENT_WORDING_VERSION)),
        purposes={purpose: purpose.value in ticked for purpose in shown},
    )


@dataclass(frozen=True, kw_only=True)
class DataActions:
    """What the "Your data" page does, wired by the app: export, and erase after a confirmation."""

    # user id -> the zip archive of everything about them, and its file name
    export: Callable[[UUID], tuple[bytes, str]]
    # (user id, the confirmation typed) -> anything; raises InvalidInput when it does not confirm
    erase: Callable[[UUID, str], object]


def mount(
    app: FastAPI,
    *,
    auth: AuthFacade,
    profile: ProfileFacade,
    recommender: RecommenderFacade,
    operations: OperatorView,
    data: DataActions,
    secret_key: str,
    integrations: IntegrationsFacade | None = None,
) -> None:
    """Add the web pages, their static files and the session cookie to `app`."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=auth.session_ttl_seconds,
        same_site="lax",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(SignInRequired, _sign_in_first)
    visitor = Visitor(auth)
    app.include_router(_router(auth=auth, profile=profile, recommender=recommender, visitor=visitor))
    app.include_router(_oidc_router(auth=auth))
    app.include_router(_sessions_router(auth=auth, visitor=visitor))
    app.include_router(_data_router(auth=auth, data=data, visitor=visitor))
    if integrations is not None:
        app.include_router(_calendar_router(integrations=integrations, profile=profile, visitor=visitor))
    app.include_router(_operations_router(operations=operations, visitor=visitor))


def _router(*, auth: AuthFacade, profile: ProfileFacade, recommender: RecommenderFacade, visitor: Visitor) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_model=None)
    def home(request: Request, principal: Annotated[Principal, Depends(visitor.page)]) -> Response:
        user_id = principal.user_id
        if not profile.consents(user_id=user_id).answered:
            # Onboarding: nobody gets a tip before they have seen what Tipwise asks to do.
            return RedirectResponse("/welcome", status_code=303)
        return _render(request, "tips.html")

    @router.get("/welcome", response_model=None)
    def welcome(request: Request, principal: Annotated[Principal, Depends(visitor.page)]) -> Response:
        user_id = principal.user_id
        return _render(request, "welcome.html", **_consent_fields(profile.consents(user_id=user_id)))

    @router.post("/welcome", response_model=None)
    async def answer_welcome(request: Request, principal: Annotated[Principal, Depends(visitor.form)]) -> Response:
        user_id = principal.user_id
        try:
            decisions = await _consent_decisions(request)
        except ValidationError:
            # Only a stale or forged form gets here: show the current wording again.
            return RedirectResponse("/welcome", status_code=303)
        await run_in_threadpool(profile.record_consents, user_id=user_id, decisions=decisions, source=ConsentSource.WEB)
        return RedirectResponse("/", status_code=303)

    @router.get("/signup")
    def signup_page(request: Request) -> HTMLResponse:
        visitor(request)
        return _render(request, "signup.html", email="", error=None)

    @router.post("/signup", response_model=None)
    async def signup(
        request: Request,
        email: Annotated[str, Form()],
        password: Annotated[str, Form()],
        timezone: Annotated[str, Form()] = "UTC",
    ) -> Response:
        await visitor.sending_form(request)
        try:
            body = RegisterRequest(email=email, password=password)
            account = await run_in_threadpool(auth.register, email=body.email, password=body.password)
        except ValidationError as exc:
            message = "; ".join(str(err["msg"]) for err in exc.errors())
            return _render(request, "signup.html", 422, email=email, error=message)
        except Conflict as exc:
            return _render(request, "signup.html", 409, email=email, error=exc.detail)
        try:
            zone = validate_timezone(timezone)
        except ValueError:
            zone = "UTC"
        await run_in_threadpool(profile.update_preferences, user_id=account.id, patch=PreferencesPatch(timezone=zone))
        user_agent, ip = client_of(request)
        issued = await run_in_threadpool(
            auth.start_session, account.id, method=LoginMethod.PASSWORD, user_agent=user_agent, ip=ip
        )
        _start_session(request, issued)
        return RedirectResponse("/welcome", status_code=303)

    @router.get("/signin")
    def signin_page(request: Request) -> HTMLResponse:
        visitor(request)
        return _render(request, "signin.html", email="", error=None, providers=auth.oidc_providers())

    @router.post("/signin", response_model=None)
    async def signin(request: Request, email: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
        await visitor.sending_form(request)
        user_agent, ip = client_of(request)
        try:
            issued = await run_in_threadpool(auth.login, email=email, password=password, user_agent=user_agent, ip=ip)
        except Unauthorized as exc:
            return _render(request, "signin.html", 401, email=email, error=exc.detail, providers=auth.oidc_providers())
        except TooManyRequests as exc:
            page = _render(request, "signin.html", 429, email=email, error=exc.detail, providers=auth.oidc_providers())
            page.headers.update(exc.headers)
            return page
        _start_session(request, issued)
        return RedirectResponse("/", status_code=303)

    @router.post("/signout")
    async def signout(request: Request) -> RedirectResponse:
        principal = await visitor.sending_form(request)
        if principal is not None:
            # Already revoked elsewhere in the meantime: signed out all the same.
            with contextlib.suppress(NotFound, Unauthorized):
                await run_in_threadpool(auth.logout, principal=principal)
        request.session.clear()
        return _to_signin()

    @router.post("/web/tips/next", response_model=None)
    async def next_tip(request: Request, principal: Annotated[Principal, Depends(visitor.fragment)]) -> Response:
        decision = await run_in_threadpool(recommender.next_tip, user_id=principal.user_id)
        return _render(request, "_card.html", decision=decision)

    @router.post("/web/tips/{tip_instance_id}/reaction", response_model=None)
    async def react(
        request: Request,
        principal: Annotated[Principal, Depends(visitor.fragment)],
        tip_instance_id: UUID,
        reaction: Annotated[Reaction, Form()],
    ) -> Response:
        await run_in_threadpool(
            recommender.record_feedback,
            user_id=principal.user_id,
            request=FeedbackRequest(
                tip_instance_id=tip_instance_id, reaction=reaction, idempotency_key=f"web:{tip_instance_id}"
            ),
        )
        return _render(request, "_reacted.html", reaction=reaction)

    @router.get("/history", response_model=None)
    def history(
        request: Request, principal: Annotated[Principal, Depends(visitor.page)], cursor: str | None = None
    ) -> Response:
        user_id = principal.user_id
        page = recommender.history(user_id=user_id, limit=20, cursor=cursor)
        prefs = profile.preferences(user_id=user_id)
        return _render(request, "history.html", page=page, zone=prefs.zone, zone_name=prefs.timezone)

    def preferences_view(
        request: Request,
        user_id: UUID,
        status_code: int = 200,
        *,
        saved: bool = False,
        consents_saved: bool = False,
        error: str | None = None,
    ) -> HTMLResponse:
        prefs = profile.preferences(user_id=user_id)
        shown = PreferencesOut.of(prefs)
        consents = profile.consents(user_id=user_id)
        return _render(
            request,
            "preferences.html",
            status_code,
            prefs=prefs,
            quiet=QuietHours.of(prefs.quiet_hours) if prefs.quiet_hours else None,
            active={day: _day_text(shown.active_hours.get(day)) for day in Weekday},
            weekdays=list(Weekday),
            channels=list(Channel),
            categories=list(Category),
            saved=saved,
            consents_saved=consents_saved,
            error=error,
            history=consents.ledger,
            zone=prefs.zone,
            **_consent_fields(consents),
        )

    @router.get("/preferences", response_model=None)
    def preferences_page(request: Request, principal: Annotated[Principal, Depends(visitor.page)]) -> Response:
        user_id = principal.user_id
        return preferences_view(request, user_id)

    @router.post("/preferences", response_model=None)
    async def save_preferences(request: Request, principal: Annotated[Principal, Depends(visitor.form)]) -> Response:
        user_id = principal.user_id
        form = await request.form()
        fields: dict[str, Any] = {
            "timezone": str(form.get("timezone", "UTC")),
            "muted_categories": [str(value) for value in form.getlist("muted")],
        }
        if SCHEDULE_FIELD in form:
            # The page sends the whole schedule; a form without it (an older page) keeps the stored one.
            fields.update(_schedule_fields(form))
        try:
            patch = PreferencesPatch.model_validate(fields)
        except ValidationError as exc:
            error = "; ".join(f"{_field_label(err['loc'])}: {err['msg']}" for err in exc.errors())
            return await run_in_threadpool(preferences_view, request, user_id, 422, error=error)
        await run_in_threadpool(profile.update_preferences, user_id=user_id, patch=patch)
        return await run_in_threadpool(preferences_view, request, user_id, saved=True)

    @router.post("/preferences/consents", response_model=None)
    async def save_consents(request: Request, principal: Annotated[Principal, Depends(visitor.form)]) -> Response:
        user_id = principal.user_id
        try:
            decisions = await _consent_decisions(request)
        except ValidationError as exc:
            error = "; ".join(str(err["msg"]) for err in exc.errors())
            return await run_in_threadpool(preferences_view, request, user_id, 422, error=error)
        await run_in_threadpool(profile.record_consents, user_id=user_id, decisions=decisions, source=ConsentSource.WEB)
        return await run_in_threadpool(preferences_view, request, user_id, consents_saved=True)

    return router


def _data_router(*, auth: AuthFacade, data: DataActions, visitor: Visitor) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def data_page(request: Request, user_id: UUID, status_code: int = 200, error: str | None = None) -> Response:
        account = auth.account(user_id=user_id)
        if account is None:
            return _to_signin()
        return _render(request, "data.html", status_code, email=account.email, error=error)

    @router.get("/data", response_model=None)
    def your_data(request: Request, principal: Annotated[Principal, Depends(visitor.page)]) -> Response:
        return data_page(request, principal.user_id)

    @router.post("/data/export", response_model=None)
    async def export(request: Request, principal: Annotated[Principal, Depends(visitor.form)]) -> Response:
        archive, filename = await run_in_threadpool(data.export, principal.user_id)
        return Response(
            archive,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.post("/data/delete", response_model=None)
    async def delete_account(
        request: Request, principal: Annotated[Principal, Depends(visitor.form)], confirm: Annotated[str, Form()] = ""
    ) -> Response:
        try:
            await run_in_threadpool(data.erase, principal.user_id, confirm)
        except InvalidInput:
            error = "Type your account's email address exactly to confirm."
            return await run_in_threadpool(data_page, request, principal.user_id, 422, error)
        # The erasure ended every session of the account; this browser forgets its own.
        request.session.clear()
        request.state.principal = None
        return _render(request, "goodbye.html", signed_in=False)

    return router


def _calendar_router(*, integrations: IntegrationsFacade, profile: ProfileFacade, visitor: Visitor) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def calendar_page(request: Request, user_id: UUID, status_code: int = 200, error: str | None = None) -> Response:
        return _render(
            request,
            "calendar.html",
            status_code,
            integrations=integrations.connections(user_id=user_id),
            consented=profile.allows(user_id=user_id, purpose=Purpose.CALENDAR_SIGNALS),
            sync_minutes=f"{integrations.settings.sync_minutes:g}",
            error=error,
        )

    @router.get("/calendar", response_model=None)
    def calendar(request: Request) -> Response:
        principal = visitor(request)
        if principal is None:
            return _to_signin()
        return calendar_page(request, principal.user_id)

    @router.post("/calendar", response_model=None)
    async def connect(request: Request, url: Annotated[str, Form()] = "") -> Response:
        principal = await visitor.sending_form(request)
        if principal is None:
            return _to_signin()
        try:
            await run_in_threadpool(integrations.add_calendar, user_id=principal.user_id, url=url)
        except (ConsentRequired, InvalidInput) as exc:
            error = exc.detail.removeprefix("url: ")
            status = 409 if isinstance(exc, ConsentRequired) else 422
            return await run_in_threadpool(calendar_page, request, principal.user_id, status, error)
        return RedirectResponse("/calendar", status_code=303)

    @router.post("/calendar/{integration_id}/remove", response_model=None)
    async def remove(request: Request, integration_id: UUID) -> Response:
        principal = await visitor.sending_form(request)
        if principal is None:
            return _to_signin()
        # Someone else's calendar is a 404 problem, like an unknown one.
        await run_in_threadpool(integrations.remove, user_id=principal.user_id, integration_id=integration_id)
        return RedirectResponse("/calendar", status_code=303)

    return router


def _sessions_router(*, auth: AuthFacade, visitor: Visitor) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/sessions", response_model=None)
    def sessions_page(request: Request, principal: Annotated[Principal, Depends(visitor.page)]) -> Response:
        return _render(
            request, "sessions.html", sessions=auth.sessions(user_id=principal.user_id), current=principal.session_id
        )

    @router.post("/sessions/{session_id}/revoke", response_model=None)
    async def revoke(
        request: Request, principal: Annotated[Principal, Depends(visitor.form)], session_id: UUID
    ) -> Response:
        # Someone else's session id is a 404 problem, like an unknown one.
        await run_in_threadpool(auth.revoke_session, user_id=principal.user_id, session_id=session_id)
        if session_id == principal.session_id:
            request.session.clear()
            return _to_signin()
        return RedirectResponse("/sessions", status_code=303)

    return router


def _operations_router(*, operations: OperatorView, visitor: Visitor) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def operator(request: Request) -> Response | None:
        """Return a response refusing the request, or None when the caller is an operator."""
        principal = visitor.page(request)
        # The role comes from the account at the session check, so a revoked role is honoured.
        if principal.role is not Role.OPERATOR:
            return _render(request, "forbidden.html", 403)
        return None

    @router.get("/ops", response_model=None)
    def ops(request: Request) -> Response:
        refused = operator(request)
        return refused or _render(request, "ops.html", **operations.summary())

    @router.get("/ops/evaluation.png", response_model=None)
    def evaluation_png(request: Request) -> Response:
        refused = operator(request)
        if refused is not None:
            return refused
        image = operations.evaluation_png()
        if image is None:
            return Response(status_code=204)
        return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.get("/ops/rewards.png", response_model=None)
    def rewards_png(request: Request) -> Response:
        refused = operator(request)
        return refused or Response(
            operations.rewards_png(), media_type="image/png", headers={"Cache-Control": "no-store"}
        )

    return router


def _oidc_router(*, auth: AuthFacade) -> APIRouter:
    """Sign in through an OIDC provider: send the browser there, take its answer back."""
    router = APIRouter(include_in_schema=False)

    def callback_url(request: Request, provider: str) -> str:
        base = auth.oidc_public_base_url or str(request.base_url).rstrip("/")
        return f"{base}/auth/oidc/{provider}/callback"

    def refused(request: Request, exc: TipwiseError) -> Response:
        response = _render(request, "oidc_error.html", exc.status, message=exc.detail)
        response.delete_cookie(OIDC_STATE_COOKIE, path=OIDC_COOKIE_PATH)
        return response

    @router.get("/auth/oidc/{provider}/login", response_model=None)
    async def oidc_login(request: Request, provider: str) -> Response:
        try:
            start = await run_in_threadpool(
                auth.begin_oidc_login, provider=provider, redirect_uri=callback_url(request, provider)
            )
        except TipwiseError as exc:
            return refused(request, exc)
        response = RedirectResponse(start.url, status_code=303)
        public = auth.oidc_public_base_url or ""
        _set_state_cookie(response, start, secure=request.url.scheme == "https" or public.startswith("https://"))
        return response

    @router.api_route("/auth/oidc/{provider}/callback", methods=["GET", "POST"], response_model=None)
    async def oidc_callback(request: Request, provider: str) -> Response:
        # The state, bound to this browser by its cookie, stands in for the CSRF token here.
        params = dict(request.query_params)
        if request.method == "POST":  # response_mode=form_post (Apple)
            form = await request.form()
            params.update({key: value for key, value in form.items() if isinstance(value, str)})
        try:
            account = await run_in_threadpool(
                auth.sign_in_with_oidc,
                provider=provider,
                params=params,
                browser_state=request.cookies.get(OIDC_STATE_COOKIE),
                redirect_uri=callback_url(request, provider),
            )
        except TipwiseError as exc:
            return refused(request, exc)
        user_agent, ip = client_of(request)
        issued = await run_in_threadpool(
            auth.start_session, account.id, method=LoginMethod.OIDC, user_agent=user_agent, ip=ip
        )
        _start_session(request, issued)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(OIDC_STATE_COOKIE, path=OIDC_COOKIE_PATH)
        return response

    return router


def _set_state_cookie(response: Response, start: OidcStart, *, secure: bool) -> None:
    # A form_post answer is a cross-site POST: only a SameSite=None (so Secure, so https) cookie rides along.
    response.set_cookie(
        OIDC_STATE_COOKIE,
        start.state,
        max_age=start.ttl_seconds,
        path=OIDC_COOKIE_PATH,
        httponly=True,
        secure=secure,
        samesite="none" if start.form_post and secure else "lax",
    )


def _field_label(loc: tuple[int | str, ...]) -> str:
    """Return the form field an error is about, e.g. `active_hours.mon.0` for ('active_hours', 'mon', 0)."""
    return ".".join(str(part) for part in loc) if loc else "form"


def _schedule_fields(form: FormData) -> dict[str, Any]:
    """Return the patch fields of the page's schedule: quiet hours, cap, active hours, channels."""
    start, end = str(form.get("quiet_start", "")), str(form.get("quiet_end", ""))
    week = {day.value: _day_windows(str(form.get(f"active_{day.value}", ""))) for day in Weekday}
    return {
        "quiet_hours": {"start": start, "end": end} if start or end else None,
        "frequency_cap_per_day": str(form.get("frequency_cap_per_day", "")).strip() or None,
        "active_hours": {day: windows for day, windows in week.items() if windows is not None},
        # Unticked boxes are not sent: a category with none ticked has no channel.
        "channels": {
            category.value: [str(v) for v in form.getlist(f"channel_{category.value}")] for category in Category
        },
    }


def _day_text(windows: list[ActiveWindow] | None) -> str:
    """Return a weekday's active hours as the form shows them: '' all day, 'off', or '09:00-12:00, 14:00-18:00'."""
    if windows is None:
        return ""
    return ", ".join(f"{w.start}-{w.end}" for w in windows) if windows else DAY_OFF


def _day_windows(text: str) -> list[dict[str, str]] | None:
    """Parse a weekday's field back: None all day, [] off, else the windows (validated by the patch)."""
    text = text.strip().lower()
    if not text:
        return None
    if text == DAY_OFF:
        return []
    windows = []
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        windows.append({"start": start.strip(), "end": end.strip()})
    return windows


def _start_session(request: Request, issued: IssuedTokens) -> None:
    """Point the cookie at a fresh server-side session (the tokens stay unused: the cookie is the credential)."""
    # A fresh cookie (and CSRF token) at sign-in prevents session fixation.
    request.session.clear()
    request.session["sid"] = str(issued.session_id)
    request.state.principal = Principal(user_id=issued.account_id, role=issued.role, session_id=issued.session_id)
    csrf_token(request)
