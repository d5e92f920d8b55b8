"""The review page of the demo's outputs in a real browser: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here (no internet), so it drives
``/usr/bin/chromium`` (``.ci/run`` installs Debian's package). ``VIZO_UPDATE_SCREENSHOTS=1``
also copies the screenshots into ``docs/`` (the README's picture).
"""

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import ROOT, clip, run_cli
from vizoflow.review.server import ReviewServer, review_app

CHROMIUM = Path("/usr/bin/chromium")
# No background networking: the machine's closed network refuses Chromium's own connections.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "Debian's chromium is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def demo_page(demo_run: Path, compose_cfg, monkeypatch):
    """The review page of ``make demo``'s outputs on a free loopback port."""
    monkeypatch.delenv("VIZO_UI_PASSWORD", raising=False)
    cfg = compose_cfg("+site=demo", f"output_dir={demo_run}", f"evidence.dir={demo_run}/segments")
    with ReviewServer(review_app(cfg, run_dir=demo_run), "127.0.0.1", 0) as server:
        yield server.url.rstrip("/")


def shot(page, tmp_path: Path, name: str, docs: bool = True) -> None:
    path = tmp_path / f"review-{name}.png"
    page.screenshot(path=path, full_page=True)
    if docs and os.environ.get("VIZO_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, ROOT / "docs" / path.name)


def ended_events(run: Path) -> int:
    return pl.read_parquet(run / "events.parquet").filter(pl.col("phase") == "end").height


def test_the_alerts_page_shows_every_event_of_the_demo_and_a_clip_plays(browser, demo_page, demo_run, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{demo_page}/alerts")
    alerts = page.locator("li.alert")
    expected = ended_events(demo_run)
    assert expected >= 1 and alerts.count() == expected
    assert page.locator("li.alert video").count() == expected  # every event has its clip
    video = page.locator("li.alert video").first
    state = video.evaluate("""async (v) => {
        v.muted = true;
        await v.play();
        await new Promise((done) => setTimeout(done, 800));
        return {ready: v.readyState, duration: v.duration, time: v.currentTime, error: v.error && v.error.code};
    }""")
    assert state["error"] is None and state["ready"] >= 2 and state["duration"] > 1 and state["time"] > 0, state
    video.evaluate("(v) => { v.pause(); v.currentTime = 0; }")
    thumbs = page.evaluate("""() => Promise.all([...document.querySelectorAll('video')].map((v) => new Promise((done) => {
        const img = new Image(); img.onload = () => done(img.naturalWidth); img.onerror = () => done(0); img.src = v.poster;
    })))""")
    assert all(width > 0 for width in thumbs), thumbs
    shot(page, tmp_path, "alerts")
    assert errors == []


def test_the_day_charts_render(browser, demo_page, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{demo_page}/day")
    charts = page.locator("figure.chart svg")
    assert charts.count() == 4  # the demo has footfall, occupancy, service and events
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box["width"] > 200 and box["height"] > 60
    assert page.locator(".heat img").evaluate_all("(imgs) => imgs.map((i) => i.naturalWidth)")[0] > 0
    shot(page, tmp_path, "day")


def test_the_cameras_page_shows_the_picture_with_zones(browser, demo_page, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto(f"{demo_page}/cameras")
    picture = page.locator("section.camera img").first
    picture.wait_for()
    assert picture.evaluate("(i) => i.complete && i.naturalWidth") == 320
    shot(page, tmp_path, "cameras", docs=False)


def test_the_setup_page_draws_a_zone_and_gives_yaml_the_cli_accepts(browser, demo_page, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{demo_page}/setup")
    page.wait_for_selector("#setup[data-ready=true]")
    assert page.locator("#drawing circle.staff").count() > 0  # the cashiers' ground points
    page.fill("#name", "door_mat")
    page.click("#new-zone")
    box = page.locator("#drawing").bounding_box()
    for fx, fy in [(0.05, 0.05), (0.2, 0.05), (0.2, 0.2)]:
        page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    page.click("#finish")
    page.click("#make-yaml")
    expect(page.locator("#status")).to_contain_text("passes vizoflow's checks", timeout=15_000)
    drawn = yaml.safe_load(page.input_value("#yaml"))
    assert set(drawn["zones"]) == {"cashier_1", "lane_1", "cashier_2", "lane_2", "packer", "door_mat"}
    assert drawn["frame_size"] == [320, 240] and len(drawn["zones"]["door_mat"]) == 3
    shot(page, tmp_path, "setup")

    site = yaml.safe_load((ROOT / "vizoflow" / "conf" / "site" / "demo.yaml").read_text())
    site.update(drawn, site_name="setup_check", source={"path": str(clip("ucf-checkout"))})
    (tmp_path / "conf" / "site").mkdir(parents=True)
    (tmp_path / "conf" / "site" / "setup_check.yaml").write_text("# @package _global_\n" + yaml.safe_dump(site))
    result = run_cli("+site=setup_check", "mode=snapshot", f"output_dir={tmp_path}/out",
                     env={"VIZO_CONFIG_DIR": str(tmp_path / "conf")}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "snapshot.png").is_file()


def test_a_password_protected_page_answers_401_to_an_anonymous_browser(browser, demo_run, compose_cfg, monkeypatch):
    monkeypatch.setenv("VIZO_UI_PASSWORD", "till-roll-42")
    cfg = compose_cfg("+site=demo", f"output_dir={demo_run}", f"evidence.dir={demo_run}/segments")
    with ReviewServer(review_app(cfg, run_dir=demo_run), "127.0.0.1", 0) as server:
        anonymous = browser.new_context()  # a browser would ask for the password: ask as its fetch does
        for url in ["alerts", "api/events", "static/review.css"]:
            reply = anonymous.request.get(server.url + url)
            assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Basic")
            assert b"till-roll-42" not in reply.body()
        anonymous.close()
        context = browser.new_context(http_credentials={"username": "manager", "password": "till-roll-42"})
        page = context.new_page()
        assert page.goto(server.url + "alerts").status == 200
        assert page.locator("li.alert").count() == ended_events(demo_run)
        context.close()
