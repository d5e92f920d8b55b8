"""The review page's web app (FastAPI, Jinja2 templates, one small script): read-only over a site's outputs.

Pages: alerts (a day's events with their clips), day (charts and heat maps), cameras
(latest frame with zones and lines, health), set-up (draw zones and lines, get YAML).
Under them a JSON API (``/api/...``). Clips are served with HTTP Range (browsers seek).
With a password every request needs it (HTTP Basic; any user name). Every asset is
local: no CDN.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from vizoflow.errors import ConfigError, SourceError
from vizoflow.review.alerts import Alert
from vizoflow.review.charts import DayCharts
from vizoflow.review.folders import Run, SafeFolder
from vizoflow.review.pictures import Thumbnails, draw_layout, jpeg
from vizoflow.review.setup import Layout, ground_points
from vizoflow.review.site import ReviewSite
from vizoflow.zones import Zones

HERE = Path(__file__).resolve().parent
KINDS = ("interaction", "unattended", "queue")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Scripts only from this server; the charts are inline SVG with inline styles.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
}


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


def local_time(iso: str) -> str:
    """``2026-12-05T06:46:00.438+00:00`` as ``06:46:00`` (ISO times carry the site's offset)."""
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except ValueError:
        return iso


def create_app(site: ReviewSite, password: str | None = None) -> FastAPI:
    """The web app over ``site``; with ``password`` every request needs it.

    Args:
        site: The site's runs, evidence and cameras.
        password: The page's password (``VIZO_UI_PASSWORD``); None: no password (loopback only).
    """
    app = FastAPI(title=f"vizoflow review: {site.name}", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["clock"] = local_time
    thumbnails = Thumbnails(at_seconds=site.pre_roll)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if password is not None and not password_ok(request.headers.get("authorization"), password):
            response: Response = Response("password required\n", 401, media_type="text/plain",
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

    def events(run: Run, day: str | None, camera: str | None, kind: str | None) -> tuple[list[Alert], list[str], str]:
        alerts = site.alerts(run).alerts()
        days = sorted({a.day for a in alerts} | set(run.days()), reverse=True)
        chosen = day if day in days else (days[0] if days else "")
        shown = [a for a in alerts if (not chosen or a.day == chosen) and (not camera or a.camera == camera)
                 and (not kind or a.kind == kind)]
        return shown, days, chosen

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
            return page(request, "alerts.html", None, alerts=[], days=[], day="", camera=camera, kind=kind, cameras=[])
        shown, days, chosen = events(chosen_run, day, camera, kind)
        cameras = sorted({a.camera for a in site.alerts(chosen_run).alerts()})
        return page(request, "alerts.html", chosen_run, alerts=[a.to_json() for a in shown], days=days, day=chosen,
                    camera=camera, kind=kind, kinds=KINDS, cameras=cameras)

    @app.get("/api/events")
    def api_events(run: str | None = None, day: str | None = None, camera: str | None = None,
                   kind: str | None = None) -> JSONResponse:
        chosen_run = run_of(run)
        shown, _, chosen = events(chosen_run, day, camera, kind)
        return JSONResponse({"site": site.name, "run": chosen_run.name, "day": chosen, "timezone": site.timezone,
                             "events": [a.to_json() for a in shown]})

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
        charts = DayCharts(chosen_run.path / f"analytics_metrics_{chosen}.json").all() if chosen else []
        heat = [f"/runs/{chosen_run.name}/{n}" for n in site.heat_maps(chosen_run, chosen)] if chosen else []
        return page(request, "day.html", chosen_run, days=days, day=chosen, charts=charts, heat_maps=heat)

    @app.get("/runs/{run}/{name}")
    def run_picture(run: str, name: str) -> FileResponse:
        path = run_of(run).files.file(name, (".png",))
        if path is None:
            raise HTTPException(404, "no such picture")
        return FileResponse(path, media_type="image/png")

    def camera_image(run: Run, camera: str) -> Path:
        path = site.latest_picture(run, camera)
        if path is None:
            raise HTTPException(404, f"no picture of camera {camera} in run {run.name}")
        return path

    @app.get("/cameras", response_class=HTMLResponse)
    def cameras_page(request: Request, run: str | None = None) -> HTMLResponse:
        chosen_run = site.runs.pick(run)
        live = site.live.cameras() if site.live is not None else {}
        rows = []
        for name, layout in site.cameras.items():
            picture = site.latest_picture(chosen_run, name) if chosen_run else None
            rows.append({"name": name, "layout": layout, "picture": picture is not None,
                         "age": datetime.fromtimestamp(picture.stat().st_mtime).isoformat(" ", "seconds") if picture else None,
                         "live": live.get(name)})
        info = SafeFolder(chosen_run.path).file("run.json") if chosen_run else None
        return page(request, "cameras.html", chosen_run, cameras=rows, run_info=_run_info(info))

    @app.get("/api/cameras/{camera}/picture")
    def camera_picture(camera: str, run: str | None = None, layout: bool = True) -> Response:
        chosen_run = run_of(run)
        path = camera_image(chosen_run, camera)
        import cv2

        image = cv2.imread(str(path))
        if image is None:
            raise HTTPException(422, "the camera's picture cannot be read")
        if layout:
            cam = site.cameras[camera]
            try:
                image = draw_layout(image, Zones(cam.zones, cam.frame_size), cam.lines)
            except ConfigError as exc:
                raise HTTPException(422, str(exc)) from None
        return Response(jpeg(image, quality=85), media_type="image/jpeg")

    @app.get("/setup", response_class=HTMLResponse)
    def setup_page(request: Request, run: str | None = None, camera: str | None = None) -> HTMLResponse:
        chosen_run = site.runs.pick(run)
        name = camera if camera in site.cameras else next(iter(site.cameras))
        return page(request, "setup.html", chosen_run, camera=name, cameras=list(site.cameras))

    def frame_size(run: Run | None, camera: str) -> tuple[list[int], tuple[float, float]]:
        """The size the page draws on (the configured one, else the picture's) and video px -> drawn px."""
        import cv2

        layout = site.cameras[camera]
        picture = site.latest_picture(run, camera) if run else None
        image = cv2.imread(str(picture)) if picture else None
        seen = [image.shape[1], image.shape[0]] if image is not None else None
        drawn = layout.frame_size or seen or [1280, 720]
        scale = (drawn[0] / seen[0], drawn[1] / seen[1]) if seen else (1.0, 1.0)
        return list(drawn), scale

    @app.get("/api/setup/{camera}")
    def api_setup(camera: str, run: str | None = None) -> JSONResponse:
        if camera not in site.cameras:
            raise HTTPException(404, f"no camera {camera}")
        chosen_run = site.runs.pick(run)
        layout = site.cameras[camera]
        size, scale = frame_size(chosen_run, camera)
        tracks = next((p for r in site.runs.runs() if (p := r.files.file("tracks.parquet"))), None)
        points = ground_points(tracks, camera, scale) if tracks else []
        picture = f"/api/cameras/{camera}/picture?layout=false&run={chosen_run.name}" if (
            chosen_run and site.latest_picture(chosen_run, camera)) else None
        return JSONResponse({"camera": camera, "frame_size": size, "zones": layout.zones, "lines": layout.lines,
                             "points": points, "picture": picture, "needs": layout.needs})

    @app.post("/api/setup/{camera}/yaml")
    def api_setup_yaml(camera: str, drawn: DrawnLayout, run: str | None = None) -> JSONResponse:
        if camera not in site.cameras:
            raise HTTPException(404, f"no camera {camera}")
        try:
            layout = Layout(site.cameras[camera], drawn.zones, drawn.lines, drawn.frame_size)
        except ConfigError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=422)
        chosen_run = site.runs.pick(run)
        _, scale = frame_size(chosen_run, camera)
        tracks = next((p for r in site.runs.runs() if (p := r.files.file("tracks.parquet"))), None)
        points = ground_points(tracks, camera, scale) if tracks else []
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
    return {"status": info.get("status"), "fps": info.get("fps"), "frames": info.get("frames")}
