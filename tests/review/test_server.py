"""Serving: a real socket on loopback, the bind rules, the password from the environment only."""

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, run_cli
from vizoflow.errors import ConfigError
from vizoflow.review.app import create_app
from vizoflow.review.folders import SiteRuns
from vizoflow.review.server import PASSWORD_ENV, ReviewServer, is_loopback, listen, page_password
from vizoflow.review.site import CameraLayout, ReviewSite


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                               ("localhost", True), ("0.0.0.0", False), ("::", False),
                                               ("192.168.1.20", False), ("shop.example", False)])
def test_loopback_is_told_apart(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_a_password(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"serve.host=0.0.0.0 is not loopback: set {PASSWORD_ENV}"):
        page_password("0.0.0.0")
    assert page_password("127.0.0.1") is None
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    assert page_password("0.0.0.0") == "pw"


def test_a_port_in_use_is_a_one_line_error():
    taken = listen("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=r"serve: cannot listen on 127\.0\.0\.1:\d+"):
            listen("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_the_server_answers_on_a_real_socket_and_frees_it(tmp_path):
    site = ReviewSite("shop", "UTC", SiteRuns(tmp_path), tmp_path / "segments", 10.0,
                      [CameraLayout("till", False, {}, {}, None)])
    with ReviewServer(create_app(site), "127.0.0.1", 0) as server:
        with urllib.request.urlopen(server.url + "alerts", timeout=5) as reply:
            assert reply.status == 200 and "No run of site" in reply.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "api/events", timeout=5)
        assert err.value.code == 404 and json.loads(err.value.read())["detail"] == "no run with outputs yet"
        port = server.port
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind(("127.0.0.1", port))  # released
    again.close()


@pytest.mark.slow
def test_the_cli_refuses_an_open_bind_without_a_password_in_one_line(tmp_path):
    result = run_cli("+site=demo", "mode=serve", "serve.host=0.0.0.0", f"hydra.run.dir={tmp_path}",
                     env={PASSWORD_ENV: ""}, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"vizoflow: error: serve.host=0.0.0.0 is not loopback: set {PASSWORD_ENV} to protect the page "
                     "(it shows footage of customers), or keep serve.host=127.0.0.1"]


@pytest.mark.parametrize("port", [-1, 70000, "abc", True, 8.5])
def test_a_port_that_is_not_a_port_is_named(port):
    with pytest.raises(ConfigError, match="serve.port must be a port number 0-65535"):
        listen("127.0.0.1", port)


def test_a_run_serves_the_page_only_in_mode_run_and_checks_first(compose_cfg, monkeypatch):
    from vizoflow.pipeline import serves_page

    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert serves_page(compose_cfg("+site=demo", "serve.port=8765")) == 8765
    assert serves_page(compose_cfg("+site=demo")) is None
    assert serves_page(compose_cfg("+site=demo", "serve.port=8765", "mode=batch")) is None  # one video after another
    with pytest.raises(ConfigError, match="serve.port must be a port number"):
        serves_page(compose_cfg("+site=demo", "serve.port=99999"))
    with pytest.raises(ConfigError, match="not loopback"):
        serves_page(compose_cfg("+site=demo", "serve.port=8765", "serve.host=0.0.0.0"))


@pytest.mark.slow
def test_mode_serve_serves_until_ctrl_c(tmp_path):
    run = tmp_path / "outputs" / "demo" / "2026-12-05_10-00-00"
    run.mkdir(parents=True)
    (run / "interactions.jsonl").write_text(json.dumps({
        "event_id": "q1", "kind": "queue", "phase": "end", "camera": "video", "track_ids": [3, 4],
        "start": "2026-12-05T10:00:00+00:00", "end": "2026-12-05T10:00:09+00:00", "duration": 9.0}) + "\n")
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    env.pop(PASSWORD_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "vizoflow", "+site=demo", "mode=serve", "serve.port=0",
                             f"serve.runs_dir={run.parent}", f"hydra.run.dir={tmp_path}/serve"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()  # read by a thread: the wait below never blocks past its deadline
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        deadline, url = time.monotonic() + 60, None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(queue.Empty):
                found = re.search(r"review page of site 'demo' on (http://\S+) ", lines.get(timeout=1.0))
                url = found.group(1) if found else None
        assert url is not None, "mode=serve printed no address"
        with urllib.request.urlopen(url + "api/events", timeout=10) as reply:
            assert [e["event_id"] for e in json.load(reply)["events"]] == ["q1"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
