"""The review page's web app (FastAPI, Jinja2 templates, one small script): read-only over a site's outputs.

Pages: alerts (a day's events with their clips), day (charts and heat maps), cameras
(latest frame with zones and lines, health), set-up (draw zones and lines, get YAML).
Under them a JSON API (``/api/...``). Clips are served with HTTP Range (browsers seek).
With a password every request needs it (HTTP Basic; any user name); without one, only
requests addressed to this machine by a loopback name are answered, so a web page in
the manager's browser cannot read the footage through a DNS name pointed at 127.0.0.1.
Every asset is local: no CDN.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import cv2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from vizoflow.errors import ConfigError, SourceError
from vizoflow.review.alerts import Alert
from vizoflow.review.charts import ChartCache
from vizoflow.review.folders import Run
from vizoflow.review.pictures import Thumbnails, draw_layout, jpeg
from vizoflow.review.server import is_loopback
from vizoflow.review.setup import GroundPoints, Layout
from vizoflow.review.site import ReviewSite
from vizoflow.zones import Zones

HERE = Path(__file__).resolve().parent
KINDS = ("interaction", "unattended", "queue")
SECURITY_HEADERS = MappingProxyType({
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # footage and alerts stay out of shared caches
    # Scripts only from this server; the charts are inline SVG with inline styles.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
})


class DrawnLayout(BaseModel):
    """What the set-up page sends: zones and lines as drawn, and the frame size they were drawn on."""

    zones: dict[str, list[list[float]]] = {}
    lines: dict[str, list[list[float]]] = {}
    frame_size: list[int]


def password_ok(header: str | None, password: str) -> bool:
    """Whether an ``Authorization: Basic ...`` header carries ``password`` (any user name)."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        _, _, given = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode(), password.encode())


def loopback_host(header: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name or address (any port)."""
    host = (header or "").strip().lower()
    if host.startswith("["):  # [::1]:8765
        address, _, port = host[1:].partition("]")
    elif host.count(":") == 1:  # 127.0.0.1:8765
        address, _, port = host.partition(":")
        port = ":" + port
    else:
        address, port = host, ""
    return (port == "" or (port[:1] == ":" and port[1:].isdigit())) and is_loopback(address)


def local_time(iso: str) -> str:
    """``2026-12-05T06:46:00.438+00:00`` as ``06:46:00`` (ISO times carry the site's offset)."""
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except ValueError:
        return iso


def _day(value: str | None) -> str | None:
    """A ``YYYY-MM-DD`` query value; 422 when malformed."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise HTTPException(422, f"day must be YYYY-MM-DD, got {value!r}") from None


class AlertQuery:
    """One run's alerts filtered for a page or the API: read once per request."""

    def __init__(self, site: ReviewSite, run: Run) -> None:
        self.alerts = site.alerts(run).alerts()
        self.days = sorted({a.day for a in self.alerts} | set(run.days()), reverse=True)
        self.cameras = sorted({a.camera for a in self.alerts})

    def shown(self, day: str, camera: str | None, kind: str | None) -> list[Alert]:
        """The alerts of ``day`` (all days when empty), of ``camera`` and ``kind`` when given."""
        return [a for a in self.alerts if (not day or a.day == day) and (not camera or a.camera == camera)
                and (not kind or a.kind == kind)]


def create_app(site: ReviewSite, password: str | None = None) -> FastAPI:
    """The web app over ``site``; with ``password`` every request needs it.

    Args:
        site: The site's runs, evidence and cameras.
        password: The page's password (``VIZO_UI_PASSWORD``); None: no password, loopback names only.
    """
    app = FastAPI(title=f"vizoflow review: {site.name}", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["clock"] = local_time
    thumbnails = Thumbnails(at_seconds=site.pre_roll)
    ground = GroundPoints()
    day_charts = ChartCache()
    zone = ZoneInfo(site.timezone)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if password is None and not loopback_host(request.headers.get("host")):
            response: Response = Response("this page answers only on 127.0.0.1 or localhost without a password\n",
                                          403, media_type="text/plain")
        elif password is not None and not password_ok(request.headers.get("authorization"), password):
            response = Response("password required\n", 401, media_type="text/plain",
                                headers={"WWW-Authenticate": 'Basic realm="vizoflow", charset="UTF-8"'})
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def run_of(name: str | None) -> Run:
        run = site.runs.pick(name)
        if run is None:
            raise HTTPException(404, f"no run {name}" if name else "no run with outputs yet")
        return run

    def camera_of(name: str) -> str:
        if name not in site.cameras:
            raise HTTPException(404, f"no camera {name}")
        return name

    def page(request: Request, name: str, run: Run | None, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {
            "site": site, "run": run, "runs": site.runs.runs(), "page": name.removesuffix(".html"), **context})

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/alerts")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts_page(request: Request, run: str | None = None, day: str | None = None, camera: str | None = None,
                    kind: str | None = None) -> HTMLResponse:
        chosen_run = site.runs.pick(run)
        if chosen_run is None:
            return page(request, "alerts.html", None)
        query = AlertQuery(site, chosen_run)
        chosen = day if day in query.days else (query.days[0] if query.days else "")
        return page(request, "alerts.html", chosen_run, alerts=[a.to_json() for a in query.shown(chosen, camera, kind)],
                    days=query.days, day=chosen, camera=camera, kind=kind, kinds=KINDS, cameras=query.cameras)

    @app.get("/api/events")
    def api_events(run: str | None = None, day: str | None = None, camera: str | None = None,
                   kind: str | None = None) -> JSONResponse:
        """A day's events (``day``; default: the newest day with events or figures)."""
        if kind is not None and kind not in KINDS:
            raise HTTPException(422, f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        chosen_run = run_of(run)
        query = AlertQuery(site, chosen_run)
        chosen = _day(day) or (query.days[0] if query.days else "")
        return JSONResponse({"site": site.name, "run": chosen_run.name, "day": chosen, "timezone": site.timezone,
                             "events": [a.to_json() for a in query.shown(chosen, camera, kind)]})

    @app.get("/api/runs")
    def api_runs() -> JSONResponse:
        return JSONResponse({"runs": [{"name": r.name, "days": r.days()} for r in site.runs.runs()]})

    @app.get("/clips/{name}")
    def clip(name: str) -> FileResponse:
        path = site.evidence.file(name, (".mp4",))
        if path is None:
            raise HTTPException(404, "no such clip")
        return FileResponse(path, media_type="video/mp4")

    @app.get("/thumbnails/{name}")
    def thumbnail(name: str) -> Response:
        path = site.evidence.file(name, (".mp4",))
        if path is None:
            raise HTTPException(404, "no such clip")
        try:
            return Response(thumbnails.get(path), media_type="image/jpeg")
        except SourceError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/day", response_class=HTMLResponse)
    def day_page(request: Request, run: str | None = None, day: str | None = None) -> HTMLResponse:
        chosen_run = site.runs.pick(run)
        days = chosen_run.days() if chosen_run else []
        chosen = day if day in days else (days[0] if days else "")
        charts, problem = [], None
        if chosen:
            path = chosen_run.files.file(f"analytics_metrics_{chosen}.json")
            try:
                if path is None:
                    raise ValueError(f"analytics_metrics_{chosen}.json cannot be read")
                charts = day_charts.get(path)
            except ValueError as exc:
                problem = str(exc)
        heat = [f"/runs/{chosen_run.name}/{camera}/{name}" if camera else f"/runs/{chosen_run.name}/{name}"
                for camera, name in site.heat_maps(chosen_run, chosen)] if chosen else []
        return page(request, "day.html", chosen_run, days=days, day=chosen, charts=charts, heat_maps=heat, problem=problem)

    @app.get("/runs/{run}/{name}")
    def run_picture(run: str, name: str) -> FileResponse:
        path = run_of(run).files.file(name, (".png",))
        if path is None:
            raise HTTPException(404, "no such picture")
        return FileResponse(path, media_type="image/png")

    @app.get("/runs/{run}/{camera}/{name}")
    def camera_run_picture(run: str, camera: str, name: str) -> FileResponse:
        layout = site.cameras.get(camera)
        path = run_of(run).camera_files(camera).file(name, (".png",)) if layout is not None and layout.own else None
        if path is None:
            raise HTTPException(404, "no such picture")
        return FileResponse(path, media_type="image/png")

    def camera_rows(run: Run | None) -> list[dict[str, Any]]:
        live = site.live.cameras() if site.live is not None else {}
        rows = []
        for name, layout in site.cameras.items():
            picture = site.latest_picture(run, name) if run else None
            taken = datetime.fromtimestamp(picture.stat().st_mtime, zone).isoformat(" ", "seconds") if picture else None
            rows.append({"name": name, "layout": layout, "picture": picture is not None, "age": taken,
                         "live": live.get(name)})
        return rows

    @app.get("/cameras", response_class=HTMLResponse)
    def cameras_page(request: Request, run: str | None = None) -> HTMLResponse:
        chosen_run = site.runs.pick(run)
        return page(request, "cameras.html", chosen_run, cameras=camera_rows(chosen_run),
                    run_info=_run_info(chosen_run.files.file("run.json")) if chosen_run else {})

    @app.get("/api/cameras")
    def api_cameras(run: str | None = None) -> JSONResponse:
        """Each camera's zones, lines, picture and, while a run serves the page, health and speed."""
        chosen_run = site.runs.pick(run)
        return JSONResponse({"cameras": [
            {"name": row["name"], "zones": row["layout"].zones, "lines": row["layout"].lines,
             "frame_size": row["layout"].frame_size, "picture_taken": row["age"], "live": row["live"],
             "picture_url": f"/api/cameras/{row['name']}/picture?run={chosen_run.name}" if row["picture"] else None}
            for row in camera_rows(chosen_run)]})

    @app.get("/api/cameras/{camera}/picture")
    def camera_picture(camera: str, run: str | None = None, layout: bool = True) -> Response:
        chosen_run = run_of(run)
        path = site.latest_picture(chosen_run, camera_of(camera))
        image = cv2.imread(str(path)) if path is not None else None
        if image is None:
            raise HTTPException(404, f"no picture of camera {camera} in run {chosen_run.name}")
        if layout:
            cam = site.cameras[camera]
            try:
                image = draw_layout(image, Zones(cam.zones, cam.frame_size), cam.lines)
            except ConfigError as exc:
                raise HTTPException(422, str(exc)) from None
        return Response(jpeg(image, quality=85), media_type="image/jpeg")

    @app.get("/setup", response_class=HTMLResponse)
    def setup_page(request: Request, run: str | None = None, camera: str | None = None) -> HTMLResponse:
        name = camera if camera in site.cameras else next(iter(site.cameras))
        return page(request, "setup.html", site.runs.pick(run), camera=name, cameras=list(site.cameras))

    @app.get("/api/setup/{camera}")
    def api_setup(camera: str, run: str | None = None) -> JSONResponse:
        layout = site.cameras[camera_of(camera)]
        chosen_run = site.runs.pick(run)
        size, scale = site.drawn_size(chosen_run, camera)
        picture = f"/api/cameras/{camera}/picture?layout=false&run={chosen_run.name}" if (
            chosen_run and site.latest_picture(chosen_run, camera)) else None
        return JSONResponse({"camera": camera, "frame_size": size, "zones": layout.zones, "lines": layout.lines,
                             "points": ground.get(site.tracks(chosen_run), camera, scale), "picture": picture,
                             "needs": layout.needs})

    @app.post("/api/setup/{camera}/yaml")
    def api_setup_yaml(camera: str, drawn: DrawnLayout, run: str | None = None) -> JSONResponse:
        try:
            layout = Layout(site.cameras[camera_of(camera)], drawn.zones, drawn.lines, drawn.frame_size)
        except ConfigError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=422)
        chosen_run = site.runs.pick(run)
        _, scale = site.drawn_size(chosen_run, camera)
        points = ground.get(site.tracks(chosen_run), camera, scale)
        return JSONResponse({"ok": not layout.missing(), "yaml": layout.yaml(), "warnings": layout.warnings(points),
                             "inside": layout.inside(points)})

    return app


def _run_info(path: Path | None) -> dict[str, Any]:
    """Status and speed from a run's ``run.json`` (empty while it runs)."""
    import json

    if path is None:
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {"status": info.get("status"), "fps": info.get("fps"), "frames": info.get("frames")} if isinstance(info, dict) else {}
