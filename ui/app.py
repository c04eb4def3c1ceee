"""The dashboard's ASGI app (Starlette): server-rendered pages, one URL per view, and the JSON API.

Pages (``P`` a project, ``E`` an endpoint id, ``T`` a window end, ISO 8601 or epoch ms; every
path segment URL-encoded)::

    /projects/P/                                   project overview
    /projects/P/endpoints?q=&label=&status=&sort=&order=&page=
    /projects/P/endpoints/E                        endpoint overview
    /projects/P/endpoints/E/features?window=T&q=&sort=&page=
    /projects/P/endpoints/E/metrics?range=hour|day|week|month|all|custom&start=&end=
    /projects/P/endpoints/E/windows/T?page=        window drill-down
    /projects/P/endpoints/E/alerts
    /projects/P/alerts                             alert configurations and activations
    /projects/P/applications

``/api/v1/`` + the same paths answers JSON: what the page shows, and for endpoints, alerts and
applications what ``streamdrift ... --json`` prints (``/api/v1/projects/P/endpoints`` the list
without paging, ``/api/v1/projects/P/endpoints/E`` the endpoint with its statistics,
``/api/v1/projects/P/alerts/NAME`` the alert with its activations).

Safety: read-only except ``POST .../alerts/NAME/reset``, refused (403) unless the server has a
token (``--token`` / ``STREAMDRIFT_UI_TOKEN``) and the request carries it (form field ``token`` or
``Authorization: Bearer``); tokens never travel in a URL, so they reach no access log. Names from
the stores are escaped by the templates (autoescape) and in JSON embedded in pages; pages forbid
inline scripts and anything not from this server (Content-Security-Policy). Plotly.js is served
from the installed ``plotly`` package.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from streamdrift.connectors.settings import Settings, mask_password
from streamdrift.connectors.sql_store import NotFoundError, SqlStore, StoreError
from streamdrift.connectors.tsdb.base import TSDB, TSDBError
from streamdrift.ui import data as views
from streamdrift.ui.data import BadRequest, Dashboard, parse_time, positive_int
from streamdrift.ui.svg import histogram, sparkline

log = logging.getLogger("streamdrift.ui")

HERE = Path(__file__).resolve().parent
REFRESH_SECONDS = 30
MAX_FORM_BYTES = 4096  # an action's form holds a token, nothing more
TABS = ("overview", "features", "metrics", "alerts")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def plotly_js() -> Path:
    """plotly.min.js of the installed ``plotly`` package (FileNotFoundError naming the fix when missing)."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall the plotly package (pip install plotly)")
    return path


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


# --------------------------------------------------------------------------------- templates


def url(*segments: Any, **query: Any) -> str:
    """A dashboard path: segments URL-encoded one by one, empty query values left out."""
    path = "/" + "/".join(quote(str(s), safe="") for s in segments)
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return path + ("?" + urlencode(params) if params else "")


def with_query(query: dict[str, Any], **changes: Any) -> str:
    """``?a=1&b=2``: the current query with ``changes`` applied (None or empty removes a key)."""
    merged = {**query, **changes}
    params = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(params) if params else ""


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed ``digits`` decimals for drift measures, grouped integers, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15 and digits == 0:
            return f"{int(value):,}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_g(value: Any) -> str:
    """A statistic (mean, std, min, max): four significant digits."""
    return "-" if value is None else f"{value:.4g}"


def fmt_time(value: str | None) -> str:
    """An ISO time (``2026-11-26T12:01:00.25+00:00``) as ``2026-11-26 12:01:00`` UTC; ``-`` for None."""
    if not value:
        return "-"
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc)
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def fmt_p(value: Any) -> str:
    """A p-value: ``0.0123``, ``1.2e-05``; ``0`` for one that underflowed, ``-`` for None."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def breakable(name: Any) -> Markup:
    """A column name, escaped, that may wrap after its underscores."""
    return Markup(str(escape(name)).replace("_", "_<wbr>"))


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(url=url, with_query=with_query, sparkline=sparkline, histogram=histogram, REFRESH_SECONDS=REFRESH_SECONDS,
                       STATUS_COLORS=views.STATUS_COLORS)
    env.filters.update(fmt=fmt, fmt_g=fmt_g, fmt_time=fmt_time, fmt_p=fmt_p, breakable=breakable)
    return Jinja2Templates(env=env)


# --------------------------------------------------------------------------------- the app


class DashboardApp:
    """Routes a request to its view; renders a page or answers JSON."""

    def __init__(self, dashboard: Dashboard, token: str | None):
        self.dashboard = dashboard
        self._token = token or None
        self.templates = _templates()

    # ------------------------------------------------------------------ plumbing

    @property
    def actions_enabled(self) -> bool:
        return self._token is not None

    def _authorised(self, presented: str | None) -> bool:
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token.encode())

    def _context(self, request: Request, project: str, **extra: Any) -> dict[str, Any]:
        settings = self.dashboard.settings
        return {"project": project, "projects": self.dashboard.projects(), "actions_enabled": self.actions_enabled,
                "sources": {"store": mask_password(settings.endpoint_store_connection),
                            "tsdb": mask_password(settings.tsdb_connection)},
                "refresh": True, "query": dict(request.query_params),
                "here": (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1").split("?")[0],
                **extra}

    def _page(self, request: Request, page: str, project: str, status_code: int = 200, **extra: Any) -> Response:
        """Render template ``page`` (blocking: reads the project list; run it in the thread pool)."""
        return self.templates.TemplateResponse(request, page, self._context(request, project, **extra),
                                               status_code=status_code)

    def _error(self, request: Request, api: bool, status_code: int, message: str, project: str | None) -> Response:
        message = mask_password(message)
        if api:
            return JSONResponse({"error": message}, status_code=status_code)
        try:
            return self._page(request, "error.html", project or self.dashboard.settings.project,
                              status_code=status_code, message=message, code=status_code, refresh=False)
        except (StoreError, TSDBError):  # the project list cannot be read either
            return Response(message, status_code=status_code, media_type="text/plain")

    @staticmethod
    def _segments(request: Request, prefix: str) -> list[str]:
        """The path after ``prefix``, split on ``/`` before decoding (so an encoded ``/`` stays in its segment)."""
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw = raw.decode("latin-1").split("?", 1)[0]
        rest = raw[len(prefix):] if raw.startswith(prefix) else ""
        parts = [unquote(p) for p in rest.split("/")]
        while parts and parts[-1] == "":
            parts.pop()
        return parts

    async def handle_page(self, request: Request) -> Response:
        return await self._handle(request, api=False)

    async def handle_api(self, request: Request) -> Response:
        return await self._handle(request, api=True)

    async def _handle(self, request: Request, api: bool) -> Response:
        parts = self._segments(request, "/api/v1/projects/" if api else "/projects/")
        project = parts[0] if parts else None
        try:
            if not parts:
                raise NotFoundError("no project in the path: /projects/<project>/")
            if request.method == "POST":
                return await self._action(request, api, project, parts[1:])
            name, args = self._route(parts[1:], api)
            view = getattr(self, "_view_" + name)
            if api:
                answer = await run_in_threadpool(view, project, request.query_params, *args)
                return JSONResponse(answer["data"] if "data" in answer else answer["view"])

            def render() -> Response:
                answer = view(project, request.query_params, *args)
                return self._page(request, answer.pop("template"), project, **answer)

            return await run_in_threadpool(render)
        except NotFoundError as exc:
            return self._error(request, api, 404, str(exc), project)
        except BadRequest as exc:
            return self._error(request, api, 400, str(exc), project)
        except (StoreError, TSDBError) as exc:
            log.warning("reading the stores failed: %s", mask_password(str(exc)))
            return self._error(request, api, 503, f"the stores could not be read: {exc}", project)

    @staticmethod
    def _route(parts: list[str], api: bool) -> tuple[str, tuple]:
        """(view name, its path arguments) of the path after the project."""
        if not parts:
            return "overview", ()
        head, rest = parts[0], parts[1:]
        if head == "endpoints":
            if not rest:
                return ("endpoints_json" if api else "endpoints"), ()
            endpoint_id, tail = rest[0], rest[1:]
            if not tail:
                return ("endpoint_json" if api else "endpoint_overview"), (endpoint_id,)
            if tail == ["overview"]:
                return "endpoint_overview", (endpoint_id,)
            if len(tail) == 1 and tail[0] in TABS:
                return "endpoint_" + tail[0], (endpoint_id,)
            if len(tail) == 2 and tail[0] == "windows":
                return "window", (endpoint_id, tail[1])
        elif head == "alerts" and not rest:
            return ("alerts_json" if api else "alerts"), ()
        elif head == "alerts" and len(rest) == 1 and api:
            return "alert_json", (rest[0],)
        elif head == "applications" and not rest:
            return "applications", ()
        raise NotFoundError("no such page: see the links at the top of the dashboard")

    # ------------------------------------------------------------------ views

    def _view_overview(self, project, q):
        return {"template": "overview.html", "view": self.dashboard.overview(project)}

    def _view_endpoints(self, project, q):
        view = self.dashboard.endpoints(
            project, q=q.get("q", ""), label=q.get("label", ""), status=q.get("status", ""),
            sort=q.get("sort") or "drift", order=q.get("order") or "desc",
            page=positive_int(q.get("page"), "page", 1), per_page=positive_int(q.get("per_page"), "per_page", 100, 500))
        return {"template": "endpoints.html", "view": view}

    def _view_endpoints_json(self, project, q):
        """``streamdrift endpoints list --json`` of the project, each with its verdict and open alerts."""
        view = self.dashboard.endpoints(project, q=q.get("q", ""), label=q.get("label", ""),
                                        status=q.get("status", ""), sort=q.get("sort") or "drift",
                                        order=q.get("order") or "desc", per_page=10**9, sparklines=False)
        return {"data": view["endpoints"]}

    def _view_endpoint_json(self, project, q, endpoint_id):
        """``streamdrift endpoints show ID --json``."""
        from streamdrift.connectors.endpoints import endpoint_json

        endpoint = self.dashboard.endpoint(project, endpoint_id)
        return {"data": endpoint_json(endpoint, self.dashboard.problems(endpoint_id))}

    def _endpoint_page(self, template: str, tab: str, view: dict) -> dict:
        return {"template": template, "tab": tab, "view": view, "endpoint": view["endpoint"]}

    def _view_endpoint_overview(self, project, q, endpoint_id):
        return self._endpoint_page("endpoint_overview.html", "overview",
                                   self.dashboard.endpoint_overview(project, endpoint_id))

    def _view_endpoint_features(self, project, q, endpoint_id):
        view = self.dashboard.features(project, endpoint_id, window=parse_time(q.get("window"), "window"),
                                       q=q.get("q", ""), sort=q.get("sort") or "drift",
                                       page=positive_int(q.get("page"), "page", 1),
                                       per_page=positive_int(q.get("per_page"), "per_page", 100, 500))
        return self._endpoint_page("features.html", "features", view)

    def _view_endpoint_metrics(self, project, q, endpoint_id):
        view = self.dashboard.metrics(project, endpoint_id, preset=q.get("range"), start=q.get("start"),
                                      end=q.get("end"))
        return self._endpoint_page("metrics.html", "metrics", view)

    def _view_endpoint_alerts(self, project, q, endpoint_id):
        view = self.dashboard.alerts(project, endpoint_id)
        view["endpoint"] = self.dashboard.endpoint(project, endpoint_id, with_stats=False).to_dict(with_stats=False)
        return self._endpoint_page("endpoint_alerts.html", "alerts", view)

    def _view_window(self, project, q, endpoint_id, end):
        when = parse_time(end, "window")
        view = self.dashboard.window(project, endpoint_id, when, page=positive_int(q.get("page"), "page", 1))
        return self._endpoint_page("window.html", "window", view)

    def _view_alerts(self, project, q):
        return {"template": "alerts.html", "view": self.dashboard.alerts(project)}

    def _view_alerts_json(self, project, q):
        """``streamdrift alerts list --json``."""
        from streamdrift.connectors.alert_records import alerts_json

        return {"data": alerts_json(self.dashboard.store, project)}

    def _view_alert_json(self, project, q, name):
        """``streamdrift alerts show NAME --json``."""
        from streamdrift.connectors.alert_records import alert_json

        limit = positive_int(q.get("limit"), "limit", 50)
        return {"data": alert_json(self.dashboard.store, project, name, limit)}

    def _view_applications(self, project, q):
        return {"template": "applications.html", "view": self.dashboard.applications(project)}

    # ------------------------------------------------------------------ actions

    async def _action(self, request: Request, api: bool, project: str, parts: list[str]) -> Response:
        """``POST alerts/NAME/reset``: needs the server's token in the form field ``token``
        (``application/x-www-form-urlencoded``) or an ``Authorization: Bearer`` header; 403 otherwise,
        and always when the server has none."""
        if not (len(parts) == 3 and parts[0] == "alerts" and parts[2] == "reset"):
            return self._error(request, api, 405, "the only action is POST .../alerts/<name>/reset", project)
        name = parts[1]
        presented = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            presented = header[7:].strip()
        elif request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = await request.body()
            if len(body) <= MAX_FORM_BYTES:
                presented = (parse_qs(body.decode("utf-8", "replace")).get("token") or [None])[0]
        if not self.actions_enabled:
            return self._error(request, api, 403, "actions are disabled: the dashboard is read-only unless it is "
                                                  "started with --token or STREAMDRIFT_UI_TOKEN", project)
        if not self._authorised(presented if isinstance(presented, str) else None):
            log.warning("refused to reset alert %r of project %r: no valid token", name, project)
            return self._error(request, api, 403, "wrong or missing token: the alert was not reset", project)
        from streamdrift.connectors.alert_records import reset_alert

        try:
            closed = await run_in_threadpool(reset_alert, self.dashboard.store, project, name)
        except NotFoundError as exc:
            return self._error(request, api, 404, str(exc), project)
        log.info("alert %r of project %r reset from the dashboard (%d activation(s) closed)", name, project,
                 len(closed))
        if api:
            return JSONResponse({"reset": name, "activations_reset": closed})
        return RedirectResponse(url("projects", project, "alerts", reset=name), status_code=303)


def create_app(settings: Settings, *, token: str | None = None, flink_rest: str | None = None,
               host: str = "127.0.0.1", store: SqlStore | None = None, tsdb: TSDB | None = None) -> Starlette:
    """The dashboard on the stores of ``settings`` (or the ``store`` and ``tsdb`` given).

    :param token:      the token actions need; None: read-only
    :param flink_rest: ``host:port`` of the Flink REST API, for the job's health on the overview
    :param host:       the address the server binds; on a loopback address only requests naming a
                       loopback host are served (no DNS rebinding)
    """
    from streamdrift.connectors.sql_store import SqlStore as _SqlStore
    from streamdrift.connectors.tsdb import open_tsdb
    from streamdrift.ui.metrics import registry_of

    store = store or _SqlStore(settings.endpoint_store_connection)
    tsdb = tsdb or open_tsdb(settings.tsdb_connection)
    handler = DashboardApp(Dashboard(settings, store, tsdb, flink_rest=flink_rest), token)

    async def home(request: Request) -> Response:
        return RedirectResponse(url("projects", settings.project) + "/", status_code=302)

    registry = registry_of(handler.dashboard)

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
        from starlette.concurrency import run_in_threadpool

        return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"cache-control": "public, max-age=86400"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            store.close()
            tsdb.close()

    routes = [
        Route("/", home),
        Route("/metrics", metrics),  # for Prometheus: ui/metrics.py
        Route("/static/vendor/plotly.min.js", plotly),
        Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", status_code=301)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/api/v1/projects/{rest:path}", handler.handle_api, methods=["GET", "POST"]),
        Route("/projects/{rest:path}", handler.handle_page, methods=["GET", "POST"]),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if host in LOOPBACK:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK) + ["[::1]"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.dashboard = handler.dashboard
    return app


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          flink_rest: str | None = None, log_level: str = "info") -> None:
    """Run the dashboard with uvicorn until interrupted."""
    import uvicorn

    app = create_app(settings, token=token, flink_rest=flink_rest, host=host)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)


__all__ = ["create_app", "serve", "url", "plotly_js", "DashboardApp"]

