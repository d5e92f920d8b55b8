"""How many live 10 fps cameras one process holds: the new defaults against today's settings.

Serves N loopback RTSP cameras at 10 fps (Debian's GStreamer RTSP server, as in the
tests). The cameras alternate a quieter shop stream (intel-one-by-one, 768x432, an
entrance where a few people come and go) and a busy checkout stream (ucf-checkout
re-encoded at 10 fps, 320x240, 12-18 people), so N=4 is two busy checkout streams and
two shop streams; each plays its store42 camera (zones, rules). The live pipeline runs
on them under each setting, side by side in one run:

* **default**: no overrides, the new defaults: the detect gate (the detector looks at
  most ``detect.fps`` times a second, and while nothing moves once every
  ``detect.keepalive_seconds``), one appearance model for all cameras, and features
  reused where a box can only be its track;
* **today**: the old behaviour: every frame detected (``detect.fps=null``,
  ``detect.motion=false``), a fresh feature for every box, an appearance model per
  camera (``graph.track.uses=[]``: no shared pool), the detector taking turns with the
  trackers (``runtime.detect_ahead=false``) and one frame held per camera (``source.buffer=1``);
* **fast** (optional): ``tracker=bytetrack`` (README, "Trackers and speed");
* **one thread** (optional): the defaults without ``runtime.detect_ahead`` (the detector
  takes turns with the trackers instead of working on the next round meanwhile);
* or the defaults with overrides of your own: ``--settings "default,source.buffer=4"``.

and one of two ways (``--ways``):

* **one process** (the default): a site with ``cameras:`` (one shared detector, :mod:`vizoflow.mux`);
* **separate**: N ``python -m vizoflow`` processes of one camera each.

Each trial warms up, then measures over ``--seconds``, per camera, the frames received,
processed and detected and how long the processed frames had waited for the loop
(``/metrics``: ``vizoflow_camera_*``, or the site-wide gauges of a one-camera process),
the CPU time of the vizoflow process(es) (utime + stime from ``/proc/<pid>/stat``;
vizoflow starts no child processes) and, at the end, their resident memory. A trial
holds when **every** camera processed at least 0.95 of what it received. N goes from
``--min-cameras`` up to ``--max-cameras`` per setting and way, and stops after two N in
a row that do not hold (more cameras only fail more).

    python bench/cameras.py [--seconds 120] [--max-cameras 8] [--settings default,today[,fast]]

Prints one table row per trial, a summary per setting and way, and which holds more.
The helpers that serve the cameras and run vizoflow on them are shared with ``bench/soak.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from tests.rtsp_camera import Camera, free_port, write_annexb  # noqa: E402
from vizoflow.memory import resident_mb  # noqa: E402

FOOTAGE = ROOT.parent / "shared" / "footage"
CLIPS = ("intel-one-by-one", "ucf-checkout")  # camera i plays CLIPS[i % 2]: shop, checkout, shop, ...
KIND = MappingProxyType({"intel-one-by-one": "shop, 768x432", "ucf-checkout": "busy checkout, 320x240"})
ROLE = MappingProxyType({"intel-one-by-one": "entrance", "ucf-checkout": "checkout"})  # its store42 camera
SETTINGS = MappingProxyType({
    "default": (),
    "today": ("detect.fps=null", "detect.motion=false", "tracker.embed_refresh_seconds=null", "graph.track.uses=[]",
              "runtime.detect_ahead=false", "source.buffer=1"),
    "fast": ("tracker=bytetrack",),
    "one thread": ("runtime.detect_ahead=false",),
})
WAYS = ("one process", "separate")
HOLDS = 0.95
STORE42 = ROOT / "vizoflow" / "conf" / "site" / "store42.yaml"
START_TIMEOUT = 240.0  # seconds for every camera of a trial to get its first frame processed


class StartFailed(RuntimeError):
    """vizoflow did not get to processing frames (a bad override, a camera it cannot open)."""


# --- cameras, sites and vizoflow processes (shared with bench/soak.py) -----------------------------


def overrides_of(setting: str) -> tuple[str, ...]:
    """A named setting's overrides, or the defaults plus ``key=value`` overrides given as the setting."""
    return SETTINGS[setting] if setting in SETTINGS else tuple(setting.split())


def read_metrics(port: int) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Site-wide ``vizoflow_*`` gauges and per-camera ``vizoflow_camera_*`` ones, from one read.

    One read, so that a camera's numbers and the site's belong to the same moment. The
    per-camera part is empty for a one-camera process (a site without ``cameras:``).
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    site = {m.group(1): float(m.group(2)) for m in re.finditer(r"^vizoflow_(\w+) (\S+)$", text, re.M)}
    cameras: dict[str, dict[str, float]] = {}
    for m in re.finditer(r'^vizoflow_camera_(\w+)\{camera="([^"]+)"\} (\S+)$', text, re.M):
        cameras.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return site, cameras


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


class CameraPool:
    """Loopback RTSP cameras, started on first use and kept until :meth:`close`.

    Camera ``i`` plays ``clips[i % len(clips)]``, so any N has the same mix. Cameras stay
    up between trials: each new client gets the server's initial burst, then ``fps``.

    Args:
        work: Folder for the raw H.264 streams the servers loop.
        clips: Shared clips (folders of ``../shared/footage``) the cameras alternate.
        fps: Frames per second of every camera (clips of another rate are re-encoded).
    """

    def __init__(self, work: Path, clips: Sequence[str] = CLIPS, fps: int = 10) -> None:
        self.clips, self.fps = tuple(clips), fps
        self.streams = {clip: write_annexb(FOOTAGE / clip / "video.mp4", work / f"{clip}.h264", fps=fps)
                        for clip in dict.fromkeys(self.clips)}
        self.cameras: list[tuple[str, Camera]] = []

    def get(self, i: int) -> tuple[str, Camera]:
        """Camera ``i`` and the clip it plays (started, with those before it, on first use)."""
        while len(self.cameras) <= i:
            clip = self.clips[len(self.cameras) % len(self.clips)]
            cam = Camera(self.streams[clip], fps=self.fps)
            cam.start()
            self.cameras.append((clip, cam))
        return self.cameras[i]

    def site_cameras(self, indices: Iterable[int]) -> dict[str, tuple[str, str]]:
        """``cam<i>`` -> (clip, RTSP URL) for these cameras, as :func:`write_site` takes them."""
        return {f"cam{i}": (self.get(i)[0], self.get(i)[1].url) for i in indices}

    def close(self) -> None:
        """Stop every camera server."""
        for _, cam in self.cameras:
            cam.kill()

    def __enter__(self) -> CameraPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store42_site(name: str, cameras: Mapping[str, tuple[str, str]], single: bool) -> str:
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


def write_site(conf: Path, name: str, cameras: Mapping[str, tuple[str, str]], single: bool = False) -> str:
    """Write a store42 site on ``cameras`` to ``conf/site/<name>.yaml``; its name, for ``+site=``."""
    (conf / "site").mkdir(parents=True, exist_ok=True)
    (conf / "site" / f"{name}.yaml").write_text(store42_site(name, cameras, single))
    return name


@dataclass(frozen=True)
class Running:
    """A vizoflow process started by :func:`start_vizoflow`, with its status port and console log."""

    proc: subprocess.Popen
    port: int
    log: Path

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of its console, on one line, to say why it stopped."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " / ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


def start_vizoflow(conf: Path, site: str, out: Path, overrides: Sequence[str] = (),
                   python: Sequence[str] = ("-m", "vizoflow"), env: Mapping[str, str] | None = None) -> Running:
    """Start vizoflow live on a site of ``conf`` with evidence kept local and the status endpoint on.

    Args:
        conf: Config folder holding ``site/<site>.yaml`` (added to vizoflow's own).
        site: The site's name.
        out: Output folder (evidence under ``out/segments``); the console goes to ``<out>.log``.
        overrides: More overrides (a setting's).
        python: Interpreter arguments that run vizoflow: ``-m vizoflow``, or a wrapper
            (``-X tracemalloc ... -c ...``, see ``bench/soak.py``).
        env: More environment variables.
    """
    port = free_port()
    out.mkdir(parents=True)
    log = out.parent / f"{out.name}.log"
    cmd = [sys.executable, *python, "--config-dir", str(conf), f"+site={site}", f"output_dir={out}",
           f"evidence.dir={out}/segments", "evidence.upload_url=null", "evidence.incident_url=null",
           f"status.port={port}", *overrides]
    with open(log, "w") as console:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "YOLO_OFFLINE": "1", **(env or {})},
                                stdout=console, stderr=subprocess.STDOUT)
    return Running(proc, port, log)


def wait_processing(runs: Sequence[Running], timeout: float = START_TIMEOUT) -> None:
    """Wait until every camera of every process has had a frame processed.

    Raises:
        StartFailed: A process ended or the time ran out, with the end of its console.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(all(v.get("frames_processed", 0) > 0 for v in (cams or {"": site}).values())
                   for site, cams in (read_metrics(run.port) for run in runs)):
                return
        except OSError:  # not serving yet
            pass
        ended = [run for run in runs if run.proc.poll() is not None]
        if ended or time.monotonic() > deadline:
            run = (ended or list(runs))[0]
            why = f"exit code {run.proc.returncode}" if ended else f"nothing processed in {timeout:.0f} s"
            raise StartFailed(f"vizoflow did not start ({why}): {run.log_tail()}")
        time.sleep(1)


def exit_on_sigterm() -> None:
    """Make SIGTERM end this script as Ctrl-C does, through its ``finally`` blocks, so the
    vizoflow processes and RTSP cameras it started are stopped, not orphaned."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def stop_vizoflow(runs: Sequence[Running], timeout: float = 120.0) -> list[int]:
    """SIGTERM all, wait for each (killed after ``timeout``); their exit codes."""
    for run in runs:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
    for run in runs:
        try:
            run.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
    return [run.proc.returncode for run in runs]


# --- one trial ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What one vizoflow process says at one moment: gauges per camera and site-wide, CPU time, memory."""

    at: float
    site: dict[str, float]
    cameras: dict[str, dict[str, float]]
    cpu_seconds: float
    rss_mb: float

    @classmethod
    def take(cls, run: Running, name: str) -> Reading:
        """Read ``run`` now; a one-camera process's site-wide gauges count as camera ``name``'s."""
        site, cameras = read_metrics(run.port)
        return cls(time.monotonic(), site, cameras or {name: site}, cpu_seconds(run.proc.pid), resident_mb(run.proc.pid))


@dataclass(frozen=True)
class Trial:
    """One setting, one way, N cameras: rates over the measured window.

    Attributes:
        ratios: Per camera, frames processed / frames received.
        detect_fps: Per camera, frames the detector looked at per second.
        detect_total_fps: The same from the site-wide ``frames_detected`` (summed over processes).
        cpu_cores: CPU seconds of the vizoflow process(es) per second of the window.
        rss_mb: Resident memory at the end, summed over processes.
        wait: Per camera, the mean seconds a processed frame had waited for the frame
            loop (``frame_wait_seconds``): how late the analysis is.
    """

    setting: str
    way: str
    cameras: int
    ratios: dict[str, float]
    detect_fps: dict[str, float]
    detect_total_fps: float
    cpu_cores: float
    rss_mb: float
    wait: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """Every camera (all ``cameras`` reporting) processed at least :data:`HOLDS` of what it received."""
        return len(self.ratios) == self.cameras and min(self.ratios.values()) >= HOLDS

    @property
    def cpu_share(self) -> float:
        """CPU use as a share of all the machine's cores."""
        return self.cpu_cores / (os.cpu_count() or 1)


def measure(setting: str, way: str, n: int, before: Sequence[Reading], after: Sequence[Reading]) -> Trial:
    """A :class:`Trial` of ``n`` cameras from the readings of each process at the start and the end of the window."""
    ratios: dict[str, float] = {}
    detect_fps: dict[str, float] = {}
    wait: dict[str, float] = {}
    detect_total = cpu = 0.0
    for b, a in zip(before, after, strict=True):
        seconds = a.at - b.at
        for cam, now in a.cameras.items():
            then = b.cameras.get(cam, {})
            got = now.get("frames_received", 0.0) - then.get("frames_received", 0.0)
            done = now.get("frames_processed", 0.0) - then.get("frames_processed", 0.0)
            ratios[cam] = done / got if got else 0.0
            waited = now.get("frame_wait_seconds", 0.0) - then.get("frame_wait_seconds", 0.0)
            wait[cam] = waited / done if done else 0.0
            detect_fps[cam] = (now.get("frames_detected", 0.0) - then.get("frames_detected", 0.0)) / seconds
        detect_total += (a.site.get("frames_detected", 0.0) - b.site.get("frames_detected", 0.0)) / seconds
        cpu += (a.cpu_seconds - b.cpu_seconds) / seconds
    return Trial(setting, way, n, ratios, detect_fps, detect_total, cpu, sum(a.rss_mb for a in after), wait)


class Bench:
    """The cameras and work folder of one bench run; runs trials on them.

    Args:
        work: Temporary folder: streams, site files, outputs and console logs.
        seconds: Measured time per trial.
        warm_up: Seconds between the first processed frame and the measurement (models,
            the server's initial burst).
    """

    def __init__(self, work: Path, seconds: float, warm_up: float) -> None:
        self.work, self.seconds, self.warm_up = work, seconds, warm_up
        self.conf = work / "conf"
        self.pool = CameraPool(work)
        self._trials = 0  # numbers each trial's folders, so a setting may be given twice (repeated trials)

    def _plan(self, setting: str, way: str, n: int) -> list[tuple[str, str, Path]]:
        """A trial's processes: the camera a one-camera process stands for, its site, its output folder."""
        self._trials += 1
        tag = re.sub(r"[^A-Za-z0-9.]+", "_", f"{self._trials} {setting} {way} {n}")  # a path Hydra takes in an override
        if way == "one process":
            return [("cam0", write_site(self.conf, f"site_{tag}", self.pool.site_cameras(range(n))),
                     self.work / tag / "site")]
        return [(f"cam{i}", write_site(self.conf, f"one_{tag}_{i}", self.pool.site_cameras([i]), single=True),
                 self.work / tag / f"cam{i}") for i in range(n)]

    def trial(self, setting: str, way: str, n: int) -> Trial:
        """Start, wait for frames, warm up, measure ``seconds``, stop with SIGTERM.

        Raises:
            StartFailed: vizoflow did not get to processing frames.
        """
        runs: list[tuple[str, Running]] = []
        try:
            for name, site, out in self._plan(setting, way, n):
                runs.append((name, start_vizoflow(self.conf, site, out, overrides_of(setting))))
            wait_processing([run for _, run in runs])
            time.sleep(self.warm_up)
            before = [Reading.take(run, name) for name, run in runs]
            time.sleep(self.seconds)
            after = [Reading.take(run, name) for name, run in runs]
        finally:
            stop_vizoflow([run for _, run in runs])
        return measure(setting, way, n, before, after)

    def close(self) -> None:
        """Stop the cameras."""
        self.pool.close()


# --- sweeps, table and summary ----------------------------------------------------------------------


@dataclass
class Sweep:
    """The trials of one setting and way, N upwards; ``error`` when a trial could not start."""

    setting: str
    way: str
    trials: list[Trial] = field(default_factory=list)
    error: str | None = None

    def held(self, min_cameras: int) -> int:
        """The most cameras held with every N below holding too (N under ``min_cameras`` assumed held)."""
        held = min_cameras - 1
        for t in self.trials:
            held = t.cameras if t.holds and held == t.cameras - 1 else held
        return held

    def rss_per_added_camera(self) -> float | None:
        """RSS added by each camera, from the fewest to the most cameras tried."""
        if len(self.trials) < 2:
            return None
        first, last = self.trials[0], self.trials[-1]
        return (last.rss_mb - first.rss_mb) / (last.cameras - first.cameras)


HEADER = ("| setting | way | cameras | processed/received: worst | per camera | detector calls/s: total | "
          "per camera | CPU: share of {cores} cores (cores) | RSS MB | RSS MB/camera | frames waited: worst mean (s) | "
          "holds |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def row(t: Trial) -> str:
    """One table row."""
    ratios = ", ".join(f"{v:.3f}" for v in t.ratios.values())
    detect = ", ".join(f"{v:.1f}" for v in t.detect_fps.values())
    return (f"| {t.setting} | {t.way} | {t.cameras} | {min(t.ratios.values()):.3f} | {ratios} | "
            f"{t.detect_total_fps:.1f} | {detect} | {t.cpu_share:.0%} ({t.cpu_cores:.2f}) | {t.rss_mb:.0f} | "
            f"{t.rss_mb / t.cameras:.0f} | {max(t.wait.values(), default=0.0):.2f} | {'yes' if t.holds else 'no'} |")


def sweep(bench: Bench, setting: str, way: str, min_cameras: int, max_cameras: int) -> Sweep:
    """Trials from ``min_cameras`` up, printing each row, until two N in a row fail or ``max_cameras``."""
    result, misses = Sweep(setting, way), 0
    for n in range(min_cameras, max_cameras + 1):
        try:
            t = bench.trial(setting, way, n)
        except StartFailed as exc:
            result.error = str(exc)
            print(f"| {setting} | {way} | {n} | {exc} |", flush=True)
            break
        result.trials.append(t)
        print(row(t), flush=True)
        misses = 0 if t.holds else misses + 1
        if misses == 2:
            break
    return result


def summary(s: Sweep, min_cameras: int) -> str:
    """Cameras held and RSS per added camera for one setting and way."""
    if s.error and not s.trials:
        return f"{s.setting}, {s.way}: did not run: {s.error.splitlines()[0]}"
    added = s.rss_per_added_camera()
    return (f"{s.setting}, {s.way}: holds {s.held(min_cameras)} camera(s)"
            + (f"; RSS per added camera {added:.0f} MB" if added is not None else "")
            + (f" (stopped: {s.error.splitlines()[0]})" if s.error else ""))


def comparison(sweeps: Sequence[Sweep], min_cameras: int) -> str | None:
    """``default holds X cameras, today's settings Y (Z×)``, one process if it ran; None without both."""
    way = "one process" if any(s.way == "one process" for s in sweeps) else sweeps[0].way
    found = {s.setting: s for s in sweeps if s.way == way and s.trials}
    if "default" not in found or "today" not in found:
        return None
    x, y = found["default"].held(min_cameras), found["today"].held(min_cameras)
    times = f"{x / y:.1f}×" if y else "today's settings hold none"
    return f"default holds {x} cameras, today's settings {y} ({times})" + ("" if way == "one process" else f", {way}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time per trial")
    parser.add_argument("--warm-up", type=float, default=30.0, help="seconds before measuring (models, first burst)")
    parser.add_argument("--max-cameras", type=int, default=8, help="most cameras tried (stops earlier after two "
                                                                      "N in a row that do not hold)")
    parser.add_argument("--min-cameras", type=int, default=1, help="start there (rows below it from an earlier run)")
    parser.add_argument("--settings", default="default,today", help=f"comma-separated, of {', '.join(SETTINGS)}, or the defaults "
                        "with space-separated overrides (\"source.buffer=4 detect.fps=4\")")
    parser.add_argument("--ways", default="one process", help=f"comma-separated, of {', '.join(WAYS)}")
    args = parser.parse_args()
    exit_on_sigterm()
    settings, ways = args.settings.split(","), args.ways.split(",")
    unknown = [s for s in settings if s not in SETTINGS and "=" not in s] + [w for w in ways if w not in WAYS]
    if unknown:
        parser.error(f"unknown setting or way: {', '.join(unknown)}")
    shown = min(args.max_cameras, 2 * len(CLIPS))
    print("cameras alternate: " + ", ".join(f"cam{i} {CLIPS[i % len(CLIPS)]} ({KIND[CLIPS[i % len(CLIPS)]]})"
                                             for i in range(shown))
          + (", ..." if args.max_cameras > shown else "") + "; 10 fps each")
    print(HEADER.format(cores=os.cpu_count()), flush=True)
    with tempfile.TemporaryDirectory(prefix="vizoflow-cameras-") as tmp:
        bench = Bench(Path(tmp), args.seconds, args.warm_up)
        try:
            sweeps = [sweep(bench, setting, way, args.min_cameras, args.max_cameras)
                      for setting in settings for way in ways]
        finally:
            bench.close()
    print()
    for s in sweeps:
        print(summary(s, args.min_cameras))
    if (line := comparison(sweeps, args.min_cameras)) is not None:
        print(line)


if __name__ == "__main__":
    main()
