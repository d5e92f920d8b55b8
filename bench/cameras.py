"""How many cameras a machine holds: one process with N cameras vs N single-camera processes.

Serves N loopback RTSP cameras at 10 fps (Debian's GStreamer RTSP server, as in the
tests), alternating the shared clips intel-one-by-one (768x432, an entrance) and
ucf-checkout (320x240, crowded checkout lanes), and runs the live pipeline on them
two ways, side by side in one run:

* **one process**: a site with ``cameras:`` (one shared detector, :mod:`vizoflow.mux`);
* **separate**: N ``python -m vizoflow`` processes of one camera each (what a user did
  before sites had cameras).

Each trial warms up, then counts frames received and processed per camera over
``--seconds`` (from ``/metrics``), the resident memory (summed over processes), and,
after SIGTERM, the detector's ms/frame from ``run.json``. A trial holds when **every**
camera processed at least 0.95 of what it received. Every N up to ``--max-cameras`` is
tried both ways (past the point of holding, the frames processed per second still say
how much of the machine each way gets to use).
The detector's bare cost (Ultralytics ``predict`` over decoded frames of the same clips,
nothing else running) is measured first, for the overhead column.

    python bench/cameras.py [--seconds 120] [--max-cameras 4] [--settings default,fast]

``fast`` is ``tracker=bytetrack`` (README, "Trackers and speed"). Prints one table row
per trial and a summary per setting.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from bench.common import rss_mb  # noqa: E402
from bench.soak import metrics  # noqa: E402
from tests.rtsp_camera import Camera, free_port, write_annexb  # noqa: E402

FOOTAGE = ROOT.parent / "shared" / "footage"
CLIPS = ("intel-one-by-one", "ucf-checkout")
SETTINGS = {"default": [], "fast": ["tracker=bytetrack"]}
HOLDS = 0.95
STORE42 = ROOT / "vizoflow" / "conf" / "site" / "store42.yaml"
ROLE = {"intel-one-by-one": "entrance", "ucf-checkout": "checkout"}  # which store42 camera a clip plays


def camera_metrics(port: int) -> dict[str, dict[str, float]]:
    """Per camera (``""`` for a one-camera process): its gauges from ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found: dict[str, dict[str, float]] = {}
    for m in re.finditer(r'^vizoflow_camera_(\w+)\{camera="(\w+)"\} (\S+)$', text, re.M):
        found.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return found or {"": metrics(port)}


def store42_site(name: str, cameras: dict[str, tuple[str, str]], single: bool) -> str:
    """store42 (its zones, rules and settings) on the given cameras, as a site file.

    Args:
        name: The site's name.
        cameras: Camera name -> (clip, RTSP URL); each plays the store42 camera of its clip.
        single: One camera without ``cameras:``, the way a one-camera site runs.
    """
    site = yaml.safe_load(STORE42.read_text())
    own = site.pop("cameras")
    site.update(site_name=name, status={**site["status"], "interval": 0})
    entries = {cam: {**own[ROLE[clip]], "source": {"url": url}} for cam, (clip, url) in cameras.items()}
    if single:
        (cam, entry), = entries.items()
        merged = OmegaConf.merge({k: site.get(k) for k in entry}, entry)  # what camera_config does
        site.update(OmegaConf.to_container(merged), camera=cam)
    else:
        site["cameras"] = entries
    return "# @package _global_\n" + yaml.safe_dump(site, sort_keys=False)


def bare_detector_ms(frames_per_clip: int = 60) -> float:
    """Ultralytics ``predict`` ms/frame over decoded frames of the clips, one image per call, f32 pinned."""
    import av

    from vizoflow.nodes.detect import YoloDetector

    detector = YoloDetector()
    images = []
    for clip in CLIPS:
        with av.open(str(FOOTAGE / clip / "video.mp4")) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i >= frames_per_clip:
                    break
                images.append(frame.to_ndarray(format="bgr24"))
    for image in images[:5]:
        detector._model.predict(image, **detector._args)
    started = time.perf_counter()
    for image in images:
        detector._model.predict(image, **detector._args)
    return 1000 * (time.perf_counter() - started) / len(images)


@dataclass
class Trial:
    """One way (one process or separate) with N cameras under one setting."""

    setting: str
    way: str
    cameras: int
    ratios: dict[str, float]
    input_fps: float
    processed_fps: float
    rss_mb: float
    detect_ms: float

    @property
    def holds(self) -> bool:
        return bool(self.ratios) and min(self.ratios.values()) >= HOLDS


class Bench:
    """Cameras, site files and vizoflow processes of one bench run."""

    def __init__(self, work: Path, seconds: float, warm_up: float) -> None:
        self.work, self.seconds, self.warm_up = work, seconds, warm_up
        (work / "conf" / "site").mkdir(parents=True)
        self.streams = {clip: write_annexb(FOOTAGE / clip / "video.mp4", work / f"{clip}.h264", fps=10) for clip in CLIPS}
        self.cameras: list[tuple[str, Camera]] = []

    def camera(self, i: int) -> tuple[str, Camera]:
        """Camera ``i`` (started on first use), serving the clips in turn."""
        while len(self.cameras) <= i:
            clip = CLIPS[len(self.cameras) % len(CLIPS)]
            cam = Camera(self.streams[clip], fps=10)
            cam.start()
            self.cameras.append((clip, cam))
        return self.cameras[i]

    def _site(self, name: str, cameras: list[int]) -> str:
        text = store42_site(name, {f"cam{i}": (self.camera(i)[0], self.camera(i)[1].url) for i in cameras},
                            single=name.startswith("one"))
        (self.work / "conf" / "site" / f"{name}.yaml").write_text(text)
        return name

    def _start(self, site: str, setting: str, out: Path) -> tuple[subprocess.Popen, int]:
        port = free_port()
        cmd = [sys.executable, "-m", "vizoflow", "--config-dir", str(self.work / "conf"), f"+site={site}",
               f"output_dir={out}", f"evidence.dir={out}/segments", "evidence.upload_url=null",
               "evidence.incident_url=null", f"status.port={port}", *SETTINGS[setting]]
        log = open(out.parent / f"{out.name}.log", "w")  # noqa: SIM115 - lives as long as the process
        out.mkdir(parents=True)
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "YOLO_OFFLINE": "1"}, stdout=log,
                                stderr=subprocess.STDOUT)
        return proc, port

    def trial(self, setting: str, way: str, n: int) -> Trial:
        """Start, warm up, measure ``seconds``, stop with SIGTERM, read run.json."""
        tag = f"{setting}_{way}_{n}"
        if way == "one process":
            runs = [(self._site(f"site_{tag}", list(range(n))), self.work / tag / "site")]
        else:
            runs = [(self._site(f"one_{tag}_{i}", [i]), self.work / tag / f"cam{i}") for i in range(n)]
        (self.work / tag).mkdir()
        procs = [self._start(site, setting, out) for site, out in runs]
        try:
            deadline = time.monotonic() + 240
            while True:  # every process serving metrics and processing
                try:
                    if all(all(v.get("frames_processed", 0) > 0 for v in camera_metrics(p).values()) for _, p in procs):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or any(proc.poll() is not None for proc, _ in procs):
                    raise SystemExit(f"{tag}: vizoflow did not start; see {self.work / tag}")
                time.sleep(1)
            time.sleep(self.warm_up)
            before = [camera_metrics(p) for _, p in procs]
            time.sleep(self.seconds)
            after = [camera_metrics(p) for _, p in procs]
            rss = sum(rss_mb(proc.pid) for proc, _ in procs)
        finally:
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in procs:
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
        ratios, received, processed = {}, 0.0, 0.0
        for k, (b, a) in enumerate(zip(before, after, strict=True)):
            for cam in a:
                got = a[cam]["frames_received"] - b[cam]["frames_received"]
                done = a[cam]["frames_processed"] - b[cam]["frames_processed"]
                ratios[cam or f"cam{k}"] = done / got if got else 0.0
                received, processed = received + got, processed + done
        detect = [json.loads((out / "run.json").read_text())["nodes"]["detect"]["ms_per_frame"] for _, out in runs]
        return Trial(setting, way, n, ratios, received / self.seconds, processed / self.seconds, rss,
                     sum(detect) / len(detect))

    def close(self) -> None:
        for _, cam in self.cameras:
            cam.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time per trial")
    parser.add_argument("--warm-up", type=float, default=30.0, help="seconds before measuring (models, first burst)")
    parser.add_argument("--max-cameras", type=int, default=4)
    parser.add_argument("--min-cameras", type=int, default=1, help="start there (rows below it from an earlier run)")
    parser.add_argument("--settings", default="default,fast")
    parser.add_argument("--ways", default="one process,separate")
    args = parser.parse_args()
    bare = bare_detector_ms()
    print(f"bare detector loop: {bare:.1f} ms/frame (Ultralytics predict, one image per call, f32)", flush=True)
    print("| setting | way | cameras | input fps | processed fps | processed/input (worst camera) | RSS MB | "
          "detect ms/frame | vs bare | holds |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    best: dict[tuple[str, str], tuple[int, list[Trial]]] = {}
    with tempfile.TemporaryDirectory(prefix="vizoflow-cameras-") as tmp:
        bench = Bench(Path(tmp), args.seconds, args.warm_up)
        try:
            for setting in args.settings.split(","):
                for way in args.ways.split(","):
                    trials = []
                    held = args.min_cameras - 1  # the rows below were measured before and held
                    for n in range(args.min_cameras, args.max_cameras + 1):
                        t = bench.trial(setting, way, n)
                        trials.append(t)
                        print(f"| {setting} | {way} | {n} | {t.input_fps:.1f} | {t.processed_fps:.1f} | "
                              f"{min(t.ratios.values()):.3f} | {t.rss_mb:.0f} | {t.detect_ms:.1f} | "
                              f"{t.detect_ms / bare:.2f} | {'yes' if t.holds else 'no'} |", flush=True)
                        held = n if t.holds and held == n - 1 else held
                    best[(setting, way)] = (held, trials)
        finally:
            bench.close()
    print()
    for setting in args.settings.split(","):
        one, sep = (best.get((setting, w), (0, []))[0] for w in ("one process", "separate"))
        trials = best.get((setting, "one process"), (0, []))[1]
        added = [b.rss_mb - a.rss_mb for a, b in zip(trials, trials[1:])]
        separate = best.get((setting, "separate"), (0, []))[1]
        capacity = [f"{a.cameras}: {a.processed_fps / b.processed_fps:.2f}x" for a, b in zip(trials, separate)
                    if b.processed_fps > 0]
        print(f"{setting}: one process holds {one} camera(s), separate processes {sep}"
              + (f" ({one / sep:.2f}x)" if sep else "")
              + (f"; RSS per added camera {sum(added) / len(added):.0f} MB" if added else "")
              + (f"; frames processed, one process / separate, by cameras: {', '.join(capacity)}" if capacity else ""))


if __name__ == "__main__":
    main()
