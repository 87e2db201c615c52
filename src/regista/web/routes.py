"""The pages of the web UI: thin handlers that call services and render templates.

Every route declares its rule like the API routes do (``dependencies=[rule(...)]``), and
the router checks the CSRF token of every state-changing request. Pages read through the
service layer only, with bounded, indexed queries (a page never loads all versions).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from regista.api.deps import AUTHENTICATED, PUBLIC, ActorDep, ServicesDep, rule
from regista.domain.models import Actor, Version
from regista.errors import FilterSyntaxError, Forbidden, Invalid, NotFound, RegistryError
from regista.service.access import Permission
from regista.service.clock import utcnow
from regista.service.container import Services
from regista.service.portfolio import PortfolioService
from regista.service.registry import RISK_TIERS
from regista.web import gov, pages, svg
from regista.web.csrf import verify_csrf
from regista.web.render import render
from regista.web.session import SESSION_COOKIE, SESSION_MAX_AGE, cookie_header, encode_session

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

Text = Annotated[str | None, Query(max_length=4096)]
Short = Annotated[str | None, Query(max_length=256)]
CursorQ = Annotated[str | None, Query(max_length=4096)]
PAGE_SIZE = 50
VERSIONS_PAGE = 25
CHART_VERSIONS = 60
MAX_COMPARE = 6
MODEL_CARD_LIMIT = 256 * 1024
DASHBOARD_ROWS = 25
SERVING_ROWS = 300
REPORT_LIMIT = 64 * 1024


def portfolio(services: Services) -> PortfolioService:
    return PortfolioService(services.db, services.registry.authz, services.registry.hooks)


def _safe_next(target: str | None) -> str:
    """Only local paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


# --------------------------------------------------------------------------- dashboard


@router.get("/", dependencies=[rule(Permission.MODEL_READ)])
def dashboard(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """The portfolio at a glance."""
    now = utcnow()
    overview = portfolio(svc).overview(actor, now, policy=gov.policy_rules(svc))
    deployments = gov.deployments_overview(svc, actor, limit=DASHBOARD_ROWS)
    context: dict[str, Any] = {
        "nav": "dashboard",
        "now": now,
        "overview": overview,
        "serving": deployments.serving,
        "pending": gov.pending_requests(svc, actor, limit=10),
        "drift": deployments.drift,
        "governance": gov.available(svc),
    }
    return render(request, "dashboard.html", context)


# --------------------------------------------------------------------------- catalogue


@router.get("/models", dependencies=[rule(Permission.MODEL_READ)])
def catalogue(
    request: Request, actor: ActorDep, svc: ServicesDep,
    q: Text = None, stage: Short = None, team: Short = None, risk_tier: Short = None,
    tag: Short = None, archived: Short = None, sort: Short = None, cursor: CursorQ = None,
) -> Response:
    """All models: search (the API's filter language), filters, sorting, pages."""
    sort_key = sort if sort in pages.MODEL_SORTS else "name"
    error = None
    items: list[Any] = []
    next_cursor = None
    try:
        expr = pages.model_filter(q=q, stage=stage, team=team, risk_tier=risk_tier, tag=tag,
                                  archived=archived)
        page = svc.registry.search_models(actor, filter=expr, order_by=pages.MODEL_SORTS[sort_key],
                                          page_size=PAGE_SIZE, cursor=cursor or None)
        items, next_cursor = page.items, page.next_cursor
    except (FilterSyntaxError, Invalid) as exc:
        error = exc.message
    except RegistryError as exc:
        if exc.code != "invalid_cursor":
            raise
        error = "That page link has expired; showing the first page."
    production = portfolio(svc).production_numbers(actor, [m.id for m in items])
    params = {"q": q, "stage": stage, "team": team, "risk_tier": risk_tier, "tag": tag,
              "archived": archived, "sort": None if sort_key == "name" else sort_key}
    context = {
        "nav": "models", "models": items, "next_cursor": next_cursor, "error": error,
        "production": production, "params": params, "sort": sort_key, "stages": pages.STAGES,
        "risk_tiers": RISK_TIERS, "teams": portfolio(svc).teams(actor), "now": utcnow(),
        "first_page": cursor is not None,
    }
    return render(request, "catalogue.html", context)


# --------------------------------------------------------------------------- model page


@router.get("/models/{name}", dependencies=[rule(Permission.MODEL_READ)])
def model_page(request: Request, name: str, actor: ActorDep, svc: ServicesDep,
               cursor: CursorQ = None, sort: Short = None) -> Response:
    """One model: facts, aliases, versions (paginated), metric charts, deployment timeline."""
    model = svc.registry.get_model(actor, name)
    sort_key = sort if sort in pages.VERSION_SORTS else "-number"
    try:
        page = svc.registry.search_versions(actor, model=model.name,
                                            order_by=pages.VERSION_SORTS[sort_key],
                                            page_size=VERSIONS_PAGE, cursor=cursor or None)
    except RegistryError as exc:
        if exc.code != "invalid_cursor":
            raise
        return RedirectResponse(f"/models/{model.name}", status_code=303)
    recent = svc.registry.search_versions(actor, model=model.name, order_by="number desc",
                                          page_size=CHART_VERSIONS)
    history = list(reversed(recent.items))
    metric_names = pages.key_metrics(history, limit=6)
    charts = []
    for metric in metric_names:
        points = [svg.Point(f"v{v.number}", v.metrics[metric],
                            f"/models/{model.name}/versions/{v.number}")
                  for v in history if metric in v.metrics]
        charts.append((metric, svg.metric_chart(metric, points)))
    now = utcnow()
    deployments = gov.model_deployments(svc, actor, model.name)
    timeline = _model_timeline(model.name, deployments, now)
    context = {
        "nav": "models", "model": model, "versions": page.items, "next_cursor": page.next_cursor,
        "sort": sort_key, "metric_columns": pages.key_metrics(page.items), "charts": charts,
        "chart_span": len(history), "timeline": timeline, "deployments": deployments,
        "now": now, "first_page": cursor is not None,
        "production": portfolio(svc).production_numbers(actor, [model.id]).get(model.id, []),
    }
    if request.headers.get("hx-request") == "true" and cursor:
        return render(request, "_version_rows.html", context)
    return render(request, "model.html", context)


def _model_timeline(model: str, deployments: list[gov.Deployment], now: datetime) -> Any:
    if not deployments:
        return None
    start = min(d.start for d in deployments)
    start = min(start, now - timedelta(days=7))
    lanes = []
    for env in sorted({d.environment for d in deployments}):
        segs = [svg.Segment(f"v{d.version}", d.start, d.end,
                            f"/models/{model}/versions/{d.version}", series=d.version)
                for d in deployments if d.environment == env and d.version is not None]
        lanes.append(svg.Lane(env, segs, f"/environments/{env}"))
    return svg.timeline(lanes, start=start, end=now, marker=now, marker_label="now",
                        title=f"Where {model} served over time")


# --------------------------------------------------------------------------- version page


def _read_text(svc: Services, digest: str, size: int, limit: int) -> tuple[str, bool]:
    if size == 0:
        return "", False
    end = min(size, limit) - 1
    data = b"".join(svc.blobs.open(digest, 0, end))
    return data.decode("utf-8", errors="replace"), size > limit


@router.get("/models/{name}/versions/{number}", dependencies=[rule(Permission.MODEL_READ)])
def version_page(request: Request, name: str, number: int, actor: ActorDep,
                 svc: ServicesDep) -> Response:
    """One version: provenance, metrics, files, model card, lineage, stage history, audit."""
    version = svc.registry.get_version(actor, f"{name}/{number}")
    children = svc.registry.children(actor, version.ref)
    card_html = None
    card_text = None
    card_truncated = False
    card = next((f for f in version.files if f.role == "model_card"), None)
    if card is not None:
        text, card_truncated = _read_text(svc, card.digest, card.size, MODEL_CARD_LIMIT)
        if card.path.lower().endswith((".md", ".markdown")) or "markdown" in card.media_type:
            card_html = text
        else:
            card_text = text
    report = next((f for f in version.files if f.role == "eval_report"), None)
    report_text = None
    report_truncated = False
    if report is not None and report.size <= 4 * 1024 * 1024 and _textual(report.media_type,
                                                                           report.path):
        report_text, report_truncated = _read_text(svc, report.digest, report.size, REPORT_LIMIT)
        report_text = _pretty_json(report_text) if report.path.endswith(".json") else report_text
    prov = version.provenance
    context = {
        "nav": "models", "v": version, "children": children, "card": card,
        "card_html": card_html, "card_text": card_text, "card_truncated": card_truncated,
        "report": report, "report_text": report_text, "report_truncated": report_truncated,
        "training_data": prov.get("training_data") or {},
        "training_code": prov.get("training_code") or {},
        "environment": prov.get("environment") or {},
        "parameters": prov.get("parameters") or {},
        "extras": pages.flatten(prov.get("extras") or {}),
        "stage_history": gov.stage_history(svc, actor, version),
        "requests": gov.requests_of_version(svc, actor, version),
        "audit": gov.audit_of_version(svc, actor, version),
        "served": gov.version_deployments(svc, actor, version),
        "show": pages.show,
    }
    return render(request, "version.html", context)


def _textual(media_type: str, path: str) -> bool:
    return (media_type.startswith("text/") or media_type in ("application/json",)
            or path.lower().endswith((".json", ".txt", ".md", ".csv", ".yaml", ".yml")))


def _pretty_json(text: str) -> str:
    import orjson

    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


# --------------------------------------------------------------------------- compare


@router.get("/compare", dependencies=[rule(Permission.MODEL_READ)])
def compare(request: Request, actor: ActorDep, svc: ServicesDep,
            v: Annotated[list[str] | None, Query(max_length=MAX_COMPARE * 2)] = None) -> Response:
    """Two or more versions side by side, differences highlighted."""
    refs = [r.strip() for r in (v or []) if r and r.strip()][:MAX_COMPARE]
    versions: list[Version] = []
    errors: list[str] = []
    for ref in refs:
        try:
            versions.append(svc.registry.get_version(actor, ref))
        except (NotFound, Invalid) as exc:
            errors.append(f"{ref}: {exc.message}")
        except RegistryError as exc:
            if exc.status >= 500 or isinstance(exc, Forbidden):
                raise
            errors.append(f"{ref}: {exc.message}")
    rows = pages.compare_rows(versions) if len(versions) >= 2 else None
    context = {"nav": "compare", "refs": refs, "versions": versions, "rows": rows,
               "errors": errors, "show": pages.show, "max_compare": MAX_COMPARE}
    return render(request, "compare.html", context)


# --------------------------------------------------------------------------- approvals


@router.get("/approvals", dependencies=[rule(Permission.MODEL_READ)])
def approvals(request: Request, actor: ActorDep, svc: ServicesDep,
              status: Short = None) -> Response:
    """Transition requests with their checks; approve or reject with a comment."""
    return _approvals_page(request, actor, svc, status)


def _approvals_page(request: Request, actor: Actor, svc: Services, status: str | None, *,
                    error: str | None = None, code: int = 200) -> Response:
    state = status if status in gov.REQUEST_STATUSES else "pending"
    context = {
        "nav": "approvals", "status": state, "statuses": gov.REQUEST_STATUSES,
        "requests": gov.list_requests(svc, actor, state, limit=100),
        "governance": gov.available(svc),
        "can_approve": svc.registry.authz.holds_anywhere(actor, Permission.TRANSITION_APPROVE),
        "flash": request.query_params.get("done"), "error": error,
    }
    return render(request, "approvals.html", context, status=code)


@router.post("/approvals/{request_id}", dependencies=[rule(Permission.TRANSITION_APPROVE)])
async def decide(request: Request, request_id: int, actor: ActorDep,
                 svc: ServicesDep) -> Response:
    """Approve or reject a transition request (same rules as the API)."""
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    decision = str(form.get("decision", ""))
    comment = str(form.get("comment", ""))[:10_000]
    try:
        if decision not in ("approve", "reject"):
            raise Invalid("decision must be approve or reject", details={"field": "decision"})
        await run_in_threadpool(gov.decide, svc, actor, request_id, decision, comment)
    except RegistryError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        if isinstance(exc, Forbidden):
            from regista.web.errors import _audit_denial

            _audit_denial(request, exc)
        return await run_in_threadpool(
            _approvals_page, request, actor, svc, "pending",
            error=f"Request #{request_id} was not {decision or 'decided'}d: {exc.message}",
            code=exc.status)
    word = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"/approvals?done={word}+request+{request_id}", status_code=303)


# --------------------------------------------------------------------------- environments


@router.get("/environments", dependencies=[rule(Permission.MODEL_READ)])
def environments(request: Request, actor: ActorDep, svc: ServicesDep,
                 as_of: Short = None) -> Response:
    """Every environment: what serves there now, or at the instant the picker names."""
    error = None
    try:
        at = pages.parse_as_of(as_of)
    except Invalid as exc:
        error, at = exc.message, None
    now = utcnow()
    if at is not None and at > now:
        error, at = "The “as of” time is in the future; showing now.", None
    instant = at or now
    envs = gov.environments(svc, actor)
    serving = {e.name: gov.deployed_at(svc, actor, e.name, instant) for e in envs}
    context = {
        "nav": "environments", "envs": envs, "serving": serving, "as_of": at, "instant": instant,
        "as_of_value": pages.datetime_local(at), "error": error, "now": now,
        "governance": gov.available(svc),
        "timeline": _environments_timeline(svc, actor, envs, instant, now),
    }
    return render(request, "environments.html", context)


MAX_LANES = 20


def _lanes(intervals: list[gov.Deployment], *, by_environment: bool) -> list[svg.Lane]:
    """One lane per model (or per environment and model), the most recently active first,
    at most :data:`MAX_LANES` of them; segments coloured by version number."""
    latest: dict[tuple[str, str], datetime] = {}
    for d in intervals:
        key = (d.environment if by_environment else "", d.model)
        latest[key] = max(latest.get(key, d.start), d.start)
    keys = sorted(latest, key=lambda k: latest[k], reverse=True)[:MAX_LANES]
    lanes = []
    for env, model in sorted(keys):
        segs = [svg.Segment(f"v{d.version}", d.start, d.end,
                            f"/models/{d.model}/versions/{d.version}", series=d.version or 0,
                            title=f"{d.model}/{d.version} in {d.environment}")
                for d in intervals
                if d.model == model and (not by_environment or d.environment == env)
                and d.version is not None]
        label = f"{env} · {model}" if by_environment else model
        lanes.append(svg.Lane(label, segs, f"/models/{model}"))
    return lanes


def _environments_timeline(svc: Services, actor: Actor, envs: list[gov.Environment],
                           marker: datetime, now: datetime) -> Any:
    intervals: list[gov.Deployment] = []
    for env in envs[:10]:
        intervals.extend(gov.environment_history(svc, actor, env.name, limit=60))
    if not intervals:
        return None
    start = min([d.start for d in intervals] + [now - timedelta(days=30)])
    return svg.timeline(_lanes(intervals, by_environment=True), start=start, end=now,
                        marker=marker, marker_label="as of" if marker != now else "now",
                        title="What served in each environment over time")


@router.get("/environments/{name}", dependencies=[rule(Permission.MODEL_READ)])
def environment_page(request: Request, name: str, actor: ActorDep, svc: ServicesDep,
                     as_of: Short = None) -> Response:
    """One environment: current deployments, its timeline by model, and its history."""
    error = None
    try:
        at = pages.parse_as_of(as_of)
    except Invalid as exc:
        error, at = exc.message, None
    now = utcnow()
    if at is not None and at > now:
        error, at = "The “as of” time is in the future; showing now.", None
    env = gov.environment(svc, actor, name)
    instant = at or now
    history = gov.environment_history(svc, actor, env.name, limit=300)
    start = min([d.start for d in history] + [now - timedelta(days=30)])
    timeline = svg.timeline(_lanes(history, by_environment=False), start=start, end=now,
                            marker=instant, marker_label="as of" if at else "now",
                            title=f"What served in {env.name} over time") if history else None
    context = {
        "nav": "environments", "env": env, "serving": gov.deployed_at(svc, actor, env.name, instant),
        "history": sorted(history, key=lambda d: d.start, reverse=True)[:100],
        "as_of": at, "instant": instant, "as_of_value": pages.datetime_local(at), "error": error,
        "timeline": timeline, "now": now, "limit": SERVING_ROWS,
    }
    return render(request, "environment.html", context)


# --------------------------------------------------------------------------- audit log


@router.get("/audit", dependencies=[rule(Permission.AUDIT_READ)])
def audit_log(request: Request, actor: ActorDep, svc: ServicesDep,
              model: Short = None, version: Annotated[int | None, Query(ge=1)] = None,
              who: Short = None, action: Short = None, outcome: Short = None,
              since: Short = None, until: Short = None, cursor: CursorQ = None) -> Response:
    """The audit log, filterable, with the chain's verification status."""
    error = None
    events: list[Any] = []
    next_cursor = None
    try:
        page = gov.audit_events(
            svc, actor, model=model or None, version=version, who=who or None,
            action=action or None, outcome=outcome or None,
            since=pages.parse_as_of(since), until=pages.parse_as_of(until), cursor=cursor or None,
        )
        events, next_cursor = page
    except (Invalid, FilterSyntaxError) as exc:
        error = exc.message
    except RegistryError as exc:
        if exc.code != "invalid_cursor":
            raise
        error = "That page link is not valid; showing the newest events."
    params = {"model": model, "version": version, "who": who, "action": action,
              "outcome": outcome, "since": since, "until": until}
    context = {
        "nav": "audit", "events": events, "next_cursor": next_cursor, "error": error,
        "params": params, "verification": gov.last_verification(svc),
        "outcomes": ("ok", "denied", "break_glass"), "first_page": cursor is not None,
    }
    return render(request, "audit.html", context)


@router.post("/audit/verify", dependencies=[rule(Permission.AUDIT_READ)])
def audit_verify(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Verify the whole chain now (the result is shown on the audit page)."""
    gov.verify_audit(svc, actor)
    return RedirectResponse("/audit", status_code=303)


# --------------------------------------------------------------------------- policy, admin


@router.get("/policy", dependencies=[rule(Permission.MODEL_READ)])
def policy_page(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """The policy in force (stages, transitions, approvals, required metadata)."""
    context = {"nav": "policy", "policy": gov.current_policy(svc, actor)}
    return render(request, "policy.html", context)


@router.get("/admin", dependencies=[rule(Permission.PRINCIPAL_MANAGE)])
def admin(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Users, teams, role bindings and tokens."""
    context = {"nav": "admin", "directory": gov.directory(svc, actor),
               "flash": request.query_params.get("done"), "new_token": None}
    return render(request, "admin.html", context)


@router.get("/account", dependencies=[rule(AUTHENTICATED)])
def account(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """The signed-in user: roles and own API tokens."""
    context = {"nav": "account", "me": gov.whoami(svc, actor), "new_token": None,
               "tokens": gov.own_tokens(svc, actor), "flash": request.query_params.get("done")}
    return render(request, "account.html", context)


@router.post("/account/tokens", dependencies=[rule(AUTHENTICATED)])
async def create_token(request: Request, actor: ActorDep, svc: ServicesDep) -> Response:
    """Create an API token for oneself; its secret is shown once."""
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    name = str(form.get("name", "")).strip()
    days_text = str(form.get("days", "30")).strip() or "30"
    if not days_text.isdigit() or not 1 <= int(days_text) <= 366:
        raise Invalid("expiry must be 1 to 366 days", details={"field": "days"})
    secret = await run_in_threadpool(gov.create_own_token, svc, actor, name, int(days_text))
    context = {"nav": "account", "me": gov.whoami(svc, actor), "new_token": secret,
               "tokens": gov.own_tokens(svc, actor), "flash": None}
    return render(request, "account.html", context)


@router.post("/account/tokens/{token_id}/revoke", dependencies=[rule(AUTHENTICATED)])
def revoke_token(request: Request, token_id: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """Revoke one of one's own tokens (immediately, on every server)."""
    gov.revoke_own_token(svc, actor, token_id)
    return RedirectResponse("/account?done=token+revoked", status_code=303)


# --------------------------------------------------------------------------- sign-in


@router.get("/login", dependencies=[rule(PUBLIC)])
def login_form(request: Request, svc: ServicesDep, next: Short = None) -> Response:
    """The sign-in page (password or API token)."""
    _current_actor(request)
    return render(request, "login.html", {"nav": "login", "error": None, "username": "",
                                          "next": _safe_next(next),
                                          "users_exist": gov.users_exist(svc)})


def _current_actor(request: Request) -> Actor | None:
    """The actor if the visitor is already authenticated (for the header), else None."""
    from regista.api.deps import get_actor

    try:
        return get_actor(request)
    except RegistryError:
        return None


@router.post("/login", dependencies=[rule(PUBLIC)])
async def login(request: Request, svc: ServicesDep) -> Response:
    """Check a password or a token; on success start a session and go on."""
    from starlette.concurrency import run_in_threadpool

    form = await request.form()
    username = str(form.get("username", "")).strip()[:128]
    password = str(form.get("password", ""))[:1024]
    token = str(form.get("token", "")).strip()[:1024]
    target = _safe_next(str(form.get("next", "/")))
    try:
        if token:
            await run_in_threadpool(gov.check_token, svc, token)
            value, _ = encode_session(svc.secret, token=token)
        elif username and password:
            name = await run_in_threadpool(gov.check_password, svc, username, password)
            value, _ = encode_session(svc.secret, user=name)
        else:
            raise Invalid("enter a user name and password, or a token")
    except RegistryError as exc:
        message = exc.message if isinstance(exc, Invalid) else "Sign-in failed: wrong user name, " \
            "password or token, or the account is disabled."
        state = request.scope.setdefault("state", {})
        state.pop("actor", None)
        return render(request, "login.html", {"nav": "login", "error": message,
                                              "username": username, "next": target,
                                              "users_exist": gov.users_exist(svc)},
                      status=422 if isinstance(exc, Invalid) else 401)
    response = RedirectResponse(target, status_code=303)
    response.headers.append("set-cookie", cookie_header(
        SESSION_COOKIE, value, secure=request.url.scheme == "https",
        max_age=SESSION_MAX_AGE))
    return response


@router.post("/logout", dependencies=[rule(PUBLIC)])
def logout(request: Request) -> Response:
    """End the session (the cookie is cleared)."""
    response = RedirectResponse("/login", status_code=303)
    response.headers.append("set-cookie", cookie_header(
        SESSION_COOKIE, "", secure=request.url.scheme == "https", max_age=0))
    return response
