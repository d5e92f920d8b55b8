"""Soak test: the live command on N looping RTSP cameras in one process for an hour or more, unattended.

Serves N loopback RTSP cameras at 10 fps (``--fps``) with the stream mix of ``bench/cameras.py``
(alternately a shop stream, intel-one-by-one 768x432, and a busy checkout stream,
ucf-checkout 320x240: ``--cameras 4`` is two of each; ``--clip`` serves one clip on
all), runs vizoflow on them as one store42 site with ``cameras:`` (one process, one
shared detector), samples ``/metrics``, ``/health``, the process's RSS and the disk
used by its outputs every ``--every`` seconds (all samples go to ``soak.csv``), prints
a summary line every ``--report-minutes``, then stops it with SIGTERM and prints a
verdict, the processed share per camera and the RSS growth per hour: a linear fit over
the samples after the first ``--settle-minutes`` (15; a quarter of the run if that is
shorter), when models, caches and the trackers' galleries have filled. Each sample also
splits RSS by kind of mapping (``/proc/<pid>/smaps``: mapped files, glibc's main heap,
pyarrow's allocator, other anonymous memory) and records the pre-roll buffers' size, so the summary says
where memory went between the settle mark and the end.

Verdict (each a target; FAIL names the ones missed):
  * exit code 0 after SIGTERM;
  * every camera processed >= 0.95 x its input frames over the run (after the warm-up);
  * memory bounded: RSS grows by under 50 MB from the end of the first quarter to the end,
    and by under 10 MB an hour after the settle mark (the linear fit);
  * evidence keeps up: nothing failed, at most 3 clips pending at the end;
  * healthy at the end (``/health`` 200);
  * ``/metrics`` answered every sample within 5 s (a sample it misses is counted, not fatal).

The four-camera hour, and a day-long run started unattended and kept with its outputs::

    python bench/soak.py --cameras 4
    nohup .venv/bin/python bench/soak.py --minutes 1440 --out soak-day > soak-day.log 2>&1 &

``--tracemalloc`` runs vizoflow under ``python -X tracemalloc=10`` through a small
wrapper (:data:`HOOK`, passed with ``-c``; vizoflow itself is not changed) that dumps a
tracemalloc snapshot whenever it gets SIGUSR1. The soak sends it at the settle mark and
before stopping, and prints the 15 allocation sites that grew most in between. Tracing
every allocation costs CPU (a camera that holds without it may not with it) and memory
of its own, and taking a snapshot holds a copy of every trace for a while (RSS steps up
at the first snapshot): RSS figures of such a run are not comparable with one without it.

``--heaptrack`` runs vizoflow with heaptrack's preload library (Debian's ``heaptrack``
package), which records every native allocation with its call stack:
the soak prints the memory malloc'd and not yet freed every 5 minutes (:func:`heap_timeline`),
and ``heaptrack_print -f <out>/heaptrack.vizoflow.zst --print-leaks`` names what was
never freed, by call stack. It sees malloc inside OpenVINO, FFmpeg and numpy, which
tracemalloc does not. It slows every allocation, so its RSS and processed figures are
not comparable either.

``--timezone`` sets the site's zone, e.g. one whose midnight falls inside the run to see
the daily metrics files roll over (``Pacific/Kiritimati`` is UTC+14).

    python bench/soak.py [--cameras 1] [--minutes 60] [--clip CLIP] [--fps 10] [--out DIR] [--timezone UTC]
                         [--tracemalloc [FRAMES] | --heaptrack] [overrides ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cameras import (  # noqa: E402
    CLIPS,
    CameraPool,
    Running,
    StartFailed,
    exit_on_sigterm,
    read_metrics,
    start_vizoflow,
    stop_vizoflow,
    wait_processing,
    write_site,
)
from vizoflow.memory import resident_mb  # noqa: E402

WARM_UP = 60.0  # seconds before the "start" sample: models loaded, the server's initial burst over
COLUMNS = ["minutes", "input_fps", "processed_fps", "received", "processed", "dropped", "reconnects", "rss_mb",
           "worst_camera", "open_events", "evidence_pending", "evidence_failed", "clips_written", "disk_mb",
           "day_files", "healthy", "heap_returned_mb", "preroll_mb",
           *(f"{kind}_mb" for kind in ("file", "heap", "arrow", "anon"))]
MIMALLOC = range(2 << 40, 4 << 40)  # where mimalloc (pyarrow's allocator) maps its segments on 64-bit Linux
HEAPTRACK = Path("/usr/lib/heaptrack")  # Debian's heaptrack: the preload library and the interpreter of its output
SNAPSHOTS = "VIZO_SOAK_SNAPSHOTS"  # where the wrapper dumps its snapshots (environment variable)
# Runs vizoflow as `python -m vizoflow` would; SIGUSR1 dumps a tracemalloc snapshot to
# $VIZO_SOAK_SNAPSHOTS/snapshot-<k>.tracemalloc (written aside, then renamed: complete once it exists).
HOOK = """
import itertools, os, runpy, signal, sys, tracemalloc
_count = itertools.count(1)
def _dump(signum, frame):
    path = os.path.join(os.environ["VIZO_SOAK_SNAPSHOTS"], f"snapshot-{next(_count)}.tracemalloc")
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR1, _dump)
runpy.run_module("vizoflow", run_name="__main__", alter_sys=True)
"""
NOT_OURS = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib.*"),
            tracemalloc.Filter(False, "<unknown>"), tracemalloc.Filter(False, "<string>")]


def healthy(port: int) -> bool:
    """Whether ``/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def heap_timeline(trace: Path, every: float = 300.0) -> list[tuple[float, float]]:
    """Memory malloc'd and not yet freed, (seconds since start, MB), every ``every`` seconds of a heaptrack recording.

    heaptrack_print's own timeline (``-M``) takes longer than the run did on a
    half-hour recording; this reads the records it needs straight from the
    interpreted file: ``a <size> <stack>`` defines an allocation kind (numbered from
    0), ``+ <kind>`` / ``- <kind>`` allocate / free one of it, ``c <ms>`` is the
    time, all in hex.
    """
    sizes: list[int] = []
    heap, due, points = 0, 0.0, []
    with subprocess.Popen(["zstd", "-dc", str(trace)], stdout=subprocess.PIPE) as unpack:
        assert unpack.stdout is not None
        for line in unpack.stdout:
            kind = line[:1]
            if kind == b"+":
                heap += sizes[int(line[2:], 16)]
            elif kind == b"-":
                heap -= sizes[int(line[2:], 16)]
            elif kind == b"a":
                sizes.append(int(line.split()[1], 16))
            elif kind == b"c":
                seconds = int(line[2:], 16) / 1000
                if seconds >= due:
                    points.append((seconds, heap / 2**20))
                    due += every
    return points


def resident_by_kind(pid: int) -> dict[str, float]:
    """Resident MB of a process by kind of mapping, from ``/proc/<pid>/smaps``.

    ``file``: mapped files (shared libraries, models); ``heap``: glibc's main heap;
    ``arrow``: pyarrow's allocator, mimalloc, which maps its memory at addresses from
    2 TiB up (:data:`MIMALLOC`); ``anon``: every other anonymous mapping (malloc's other
    arenas and big blocks, Python's arenas, OpenVINO's and FFmpeg's buffers, the clips'
    pre-roll, thread stacks). Empty if the process is gone.
    """
    kb = {"file": 0, "heap": 0, "arrow": 0, "anon": 0}
    kind = "anon"
    try:
        with open(f"/proc/{pid}/smaps") as fh:
            for line in fh:
                head = line.split(maxsplit=5)
                if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line: range perms offset dev inode [path]
                    path = head[5].strip() if len(head) > 5 else ""
                    start = int(head[0].split("-")[0], 16)
                    kind = ("heap" if path == "[heap]" else "file" if path.startswith("/")
                            else "arrow" if start in MIMALLOC else "anon")
                elif head[0] == "Rss:":
                    kb[kind] += int(head[1])
    except OSError:
        return {}
    return {f"{k}_mb": v / 1024 for k, v in kb.items()}


def disk_mb(folder: Path) -> float:
    """Bytes under ``folder`` (clips, tables, metrics, outbox), in MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def camera_ratios(first: dict[str, dict[str, float]], last: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per camera, frames processed / frames received between two ``vizoflow_camera_*`` readings."""
    ratios = {}
    for cam, now in last.items():
        then = first.get(cam, {})
        got = now.get("frames_received", 0.0) - then.get("frames_received", 0.0)
        ratios[cam] = (now.get("frames_processed", 0.0) - then.get("frames_processed", 0.0)) / got if got else 0.0
    return ratios


def growth_per_hour(rows: list[dict[str, float]], after_minutes: float) -> tuple[float, int] | None:
    """RSS growth in MB per hour: slope of a least-squares line over the samples from ``after_minutes``
    on, and how many samples; None with fewer than two. A fit, not end minus start, so that one
    sample caught in a passing peak (a clip being cut) does not decide it."""
    late = [r for r in rows if r["minutes"] >= after_minutes]
    if len(late) < 2:
        return None
    fit = statistics.linear_regression([r["minutes"] for r in late], [r["rss_mb"] for r in late])
    return 60 * fit.slope, len(late)


def block_growth(rows: list[dict[str, float]], after_minutes: float,
                 block_minutes: float = 5.0) -> tuple[float, float, int] | None:
    """RSS growth in MB per hour fitted to ``block_minutes`` means from ``after_minutes`` on, with its standard error.

    RSS swings for minutes at a time (the clips' 45-s pre-roll of JPEGs, detector inputs
    alive at the sample), so neighbouring 30-s samples are not independent and their
    fit's own error would be too small. The error of a fit to block means says whether
    a run this long can tell 10 MB/hour from zero. None with fewer than three blocks.
    """
    blocks: dict[int, list[float]] = {}
    for r in rows:
        if r["minutes"] >= after_minutes:
            blocks.setdefault(int((r["minutes"] - after_minutes) // block_minutes), []).append(r["rss_mb"])
    full = {k: v for k, v in blocks.items() if len(v) >= 2}
    if len(full) < 3:
        return None
    x = [after_minutes + (k + 0.5) * block_minutes for k in full]
    y = [statistics.fmean(v) for v in full.values()]
    fit = statistics.linear_regression(x, y)
    residual = sum((yi - fit.intercept - fit.slope * xi) ** 2 for xi, yi in zip(x, y))
    mean_x = statistics.fmean(x)
    spread = sum((xi - mean_x) ** 2 for xi in x)
    return 60 * fit.slope, 60 * (residual / (len(x) - 2) / spread) ** 0.5, len(x)


def top_growth(first: Path, last: Path, limit: int = 15) -> list[str]:
    """The ``limit`` allocation sites (file:line) whose traced memory grew most from ``first`` to ``last``."""
    old, new = (tracemalloc.Snapshot.load(str(p)).filter_traces(NOT_OURS) for p in (first, last))
    stats = sorted(new.compare_to(old, "lineno"), key=lambda s: s.size_diff, reverse=True)[:limit]
    return [f"{s.size_diff / 2**20:+9.2f} MB {s.count_diff:+9d} blocks  now {s.size / 2**20:8.2f} MB  "
            f"{s.traceback[0].filename}:{s.traceback[0].lineno}" for s in stats]


class Soak:
    """One soak run: the cameras, the vizoflow process, samples, snapshots and the verdict."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.out = work / "out"
        self.rows: list[dict[str, float]] = []
        self.cameras_first: dict[str, dict[str, float]] = {}
        self.cameras_last: dict[str, dict[str, float]] = {}
        self.snapshots: list[Path] = []
        self.unanswered = 0  # samples for which /metrics did not answer
        self.pool = CameraPool(work, (args.clip,) if args.clip else CLIPS, fps=args.fps)
        self.running: Running | None = None
        self.recorder: subprocess.Popen | None = None  # heaptrack's interpreter, writing its output
        self.fifo, self.trace = work / "heaptrack.fifo", work / "heaptrack.vizoflow.zst"  # its input and output

    def start(self) -> None:
        """Serve the cameras and start vizoflow on a store42 site of them; wait until every one is processed."""
        a = self.args
        site = write_site(self.work / "conf", "soak", self.pool.site_cameras(range(a.cameras)))
        python, env = ("-m", "vizoflow"), {}
        if a.tracemalloc:
            python, env = ("-X", f"tracemalloc={a.tracemalloc}", "-c", HOOK), {SNAPSHOTS: str(self.work)}
        if a.heaptrack:
            env = self.heaptrack_env()
        self.running = start_vizoflow(self.work / "conf", site, self.out,
                                   ["status.interval=60", f"timezone={a.timezone}", *a.overrides], python, env)
        wait_processing([self.running], timeout=180 + 60 * bool(a.tracemalloc or a.heaptrack))

    def heaptrack_env(self) -> dict[str, str]:
        """Start heaptrack's interpreter on a pipe; the environment that makes vizoflow write to it."""
        if not (HEAPTRACK / "libheaptrack_preload.so").exists():
            raise StartFailed(f"--heaptrack needs Debian's heaptrack package ({HEAPTRACK} is missing)")
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self.recorder = subprocess.Popen(["sh", "-c", f'"{HEAPTRACK}/libexec/heaptrack_interpret" < "{self.fifo}" | '
                                                      f'zstd -q -c > "{self.trace}"'])
        return {"LD_PRELOAD": str(HEAPTRACK / "libheaptrack_preload.so"), "DUMP_HEAPTRACK_OUTPUT": str(self.fifo)}

    def sample(self, t0: float, m0: dict[str, float]) -> dict[str, float] | None:
        """One row: rates since the start sample, current gauges, RSS, disk; None if ``/metrics`` did not answer."""
        try:
            m, cameras = read_metrics(self.running.port)
        except OSError as exc:  # a stalled process is a finding of the soak, not the end of it
            self.unanswered += 1
            print(f"  /metrics did not answer ({exc}); {self.unanswered} sample(s) missed so far", flush=True)
            return None
        el = time.monotonic() - t0
        if not self.cameras_first:
            self.cameras_first = cameras
        self.cameras_last = cameras
        received, processed = m["frames_received"] - m0["frames_received"], m["frames_processed"] - m0["frames_processed"]
        row = {"minutes": el / 60, "input_fps": received / el if el else 0.0,
               "processed_fps": processed / el if el else 0.0, "received": received, "processed": processed,
               "dropped": m["frames_dropped"] - m0["frames_dropped"], "reconnects": m["reconnects"] - m0["reconnects"],
               "rss_mb": resident_mb(self.running.proc.pid),
               "worst_camera": min(camera_ratios(self.cameras_first, cameras).values(), default=0.0),
               "open_events": m.get("open_events", 0.0), "evidence_pending": m.get("evidence_pending", 0.0),
               "evidence_failed": m.get("evidence_failed", 0.0), "clips_written": m.get("clips_written", 0.0),
               "disk_mb": disk_mb(self.out), "day_files": len(list(self.out.glob("analytics_metrics_*.json"))),
               "healthy": float(healthy(self.running.port)), "heap_returned_mb": m.get("heap_returned_mb", 0.0),
               "preroll_mb": m.get("preroll_mb", 0.0),  # the site's gauge: every camera's clip cutter summed
               **resident_by_kind(self.running.proc.pid)}
        self.rows.append(row)
        return row

    def snapshot(self, timeout: float = 600.0) -> None:
        """Ask the traced process for a tracemalloc snapshot (SIGUSR1) and wait until it is written."""
        path = self.work / f"snapshot-{len(self.snapshots) + 1}.tracemalloc"
        self.running.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline or self.running.proc.poll() is not None:
                raise RuntimeError(f"no tracemalloc snapshot {path.name}: ...{self.running.log_tail()}")
            time.sleep(1)
        self.snapshots.append(path)

    @property
    def settle_minutes(self) -> float:
        """Minutes after the start sample from which memory counts (the fit, the first snapshot)."""
        return min(self.args.settle_minutes, self.args.minutes / 4)

    def run(self) -> int:
        """Sample until the end, print summaries and the verdict; returns the process exit code."""
        a = self.args
        time.sleep(WARM_UP)
        t0, m0 = time.monotonic(), read_metrics(self.running.port)[0]
        first = self.sample(t0, m0)
        if first is None:
            raise RuntimeError(f"/metrics did not answer after the warm-up: ...{self.running.log_tail()}")
        print(f"start: {a.cameras} camera(s), RSS {first['rss_mb']:.0f} MB after {WARM_UP:.0f} s warm-up; "
              f"samples every {a.every:.0f} s in {self.work / 'soak.csv'}", flush=True)
        print("  minutes  in fps  proc fps  worst cam  dropped  RSS MB  open ev  pending  failed  clips  disk MB  days"
              "  health", flush=True)
        end, next_report = t0 + 60 * a.minutes, t0 + 60 * a.report_minutes
        with open(self.work / "soak.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            while time.monotonic() < end:
                time.sleep(min(a.every, max(0.0, end - time.monotonic())))
                row = self.sample(t0, m0)
                if row is None:
                    continue
                writer.writerow({k: round(v, 3) for k, v in row.items()})
                fh.flush()
                if a.tracemalloc and not self.snapshots and row["minutes"] >= self.settle_minutes:
                    self.snapshot()
                if time.monotonic() >= next_report or time.monotonic() >= end:
                    next_report += 60 * a.report_minutes
                    print(f"  {row['minutes']:7.1f} {row['input_fps']:7.2f} {row['processed_fps']:9.2f} "
                          f"{row['worst_camera']:10.3f} {row['dropped']:8.0f} {row['rss_mb']:7.0f} "
                          f"{row['open_events']:8.0f} {row['evidence_pending']:8.0f} {row['evidence_failed']:7.0f} "
                          f"{row['clips_written']:6.0f} {row['disk_mb']:8.1f} {row['day_files']:5.0f}  "
                          f"{'ok' if row['healthy'] else 'UNHEALTHY'}", flush=True)
        if a.tracemalloc:
            self.snapshot()
        return self.stop()

    def stop(self) -> int:
        """SIGTERM, wait, stop the cameras; the exit code."""
        try:
            code = stop_vizoflow([self.running], timeout=180)[0] if self.running is not None else -1
        finally:
            self.pool.close()
            if self.recorder is not None:  # ends once vizoflow has closed the pipe
                self.recorder.wait(timeout=600)
                self.fifo.unlink(missing_ok=True)
                print(f"heaptrack output: {self.trace}", flush=True)
        return code

    def verdict(self, code: int) -> list[str]:
        """Targets missed (empty: PASS)."""
        last, quarter = self.rows[-1], self.rows[max(0, len(self.rows) // 4)]
        missed = []
        if code != 0:
            missed.append(f"exit code {code}")
        short = {cam: r for cam, r in camera_ratios(self.cameras_first, self.cameras_last).items() if r < 0.95}
        if short:
            missed.append("processed under 0.95 of input: " + ", ".join(f"{c} {r:.3f}" for c, r in short.items()))
        if last["rss_mb"] - quarter["rss_mb"] >= 50:
            missed.append(f"RSS grew {last['rss_mb'] - quarter['rss_mb']:.0f} MB after the first quarter (>= 50)")
        growth = growth_per_hour(self.rows, self.settle_minutes)
        if growth and growth[0] >= 10:
            missed.append(f"RSS grew {growth[0]:+.1f} MB/hour after minute {self.settle_minutes:.0f} (>= 10)")
        if last["evidence_failed"] > 0 or last["evidence_pending"] > 3:
            missed.append(f"evidence: {last['evidence_failed']:.0f} failed, {last['evidence_pending']:.0f} pending")
        if not last["healthy"]:
            missed.append("/health not ok at the end")
        if self.unanswered:
            missed.append(f"/metrics did not answer {self.unanswered} time(s)")
        return missed

    def report(self, code: int) -> None:
        """The summary after the run: rates, per camera, memory, evidence, snapshots' growth, verdict."""
        a, last = self.args, self.rows[-1]
        rss = [r["rss_mb"] for r in self.rows]
        clips = {f"cam{i}": clip for i, (clip, _) in enumerate(self.pool.cameras)}
        print(f"\nsoak {a.cameras} camera(s) @ {a.fps} fps for {last['minutes']:.1f} min (after {WARM_UP:.0f} s warm-up), "
              f"timezone {a.timezone}{', tracemalloc' if a.tracemalloc else ''}, exit code {code}")
        print(f"  input fps      {last['input_fps']:6.2f}")
        print(f"  processed fps  {last['processed_fps']:6.2f}  "
              f"({last['processed'] / max(last['received'], 1):.3f} of input)")
        print("  per camera     " + ", ".join(f"{cam} {r:.3f} ({clips.get(cam, '?')})" for cam, r in
                                              camera_ratios(self.cameras_first, self.cameras_last).items()))
        print(f"  dropped        {last['dropped']:6.0f}  ({last['dropped'] / max(last['received'], 1):.2%} of received)")
        print(f"  RSS            {rss[0]:6.0f} MB at start, {rss[-1]:.0f} MB at end, peak {max(rss):.0f} MB")
        growth = growth_per_hour(self.rows, self.settle_minutes)
        short = " (a short window: little to go by)" if a.minutes - self.settle_minutes < 10 else ""
        print(f"  RSS growth     {growth[0]:+6.1f} MB/hour after the first {self.settle_minutes:.1f} min "
              f"(linear fit, {growth[1]} samples){short}" if growth else "  RSS growth     (too few samples to fit)")
        if blocks := block_growth(self.rows, self.settle_minutes):
            print(f"                 {blocks[0]:+6.1f} ± {blocks[1]:.1f} MB/hour over {blocks[2]} 5-minute means "
                  "(standard error)")
        settled = next((r for r in self.rows if r["minutes"] >= self.settle_minutes), self.rows[0])
        if "anon_mb" in last and "anon_mb" in settled:
            print(f"  where (MB)     from minute {settled['minutes']:.1f} to the end: " + ", ".join(
                f"{kind} {settled[f'{kind}_mb']:.0f} -> {last[f'{kind}_mb']:.0f}"
                for kind in ("file", "heap", "arrow", "anon", "preroll")) + " (preroll: inside anon)")
        print(f"  heap trimmer   {last['heap_returned_mb']:6.0f} MB given back to the system in all (runtime.trim_seconds)")
        print(f"  reconnects     {last['reconnects']:6.0f}")
        print(f"  clips          {last['clips_written']:6.0f} written, {last['evidence_pending']:.0f} pending, "
              f"{last['evidence_failed']:.0f} failed; outputs {last['disk_mb']:.1f} MB; {last['day_files']:.0f} day file(s)")
        if self.recorder is not None:
            points = heap_timeline(self.trace)
            print("  malloc'd, not freed (heaptrack), every 5 min of the process: "
                  + ", ".join(f"{heap:.0f}" for _, heap in points) + " MB")
        if len(self.snapshots) == 2:
            print(f"  tracemalloc: the 15 sites that grew most from minute {self.settle_minutes:.1f} to the end "
                  f"({a.tracemalloc} frames traced; snapshots {self.snapshots[0].name}, {self.snapshots[1].name}):")
            for line in top_growth(*self.snapshots):
                print("    " + line)
        missed = self.verdict(code)
        print("verdict: PASS" if not missed else "verdict: FAIL: " + "; ".join(missed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1, help="live cameras in the one process (4: the four-camera case)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--clip", help=f"serve this shared clip on every camera (default: alternate {', '.join(CLIPS)})")
    parser.add_argument("--fps", type=int, default=10, help="each camera's frame rate")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (soak.csv)")
    parser.add_argument("--report-minutes", type=float, default=5.0, help="minutes between summary lines")
    parser.add_argument("--settle-minutes", type=float, default=15.0,
                        help="memory growth counts from here (at most a quarter of the run)")
    parser.add_argument("--tracemalloc", type=int, nargs="?", const=10, default=0, metavar="FRAMES",
                        help="trace allocations (FRAMES deep, 10 if not given) and print the sites that grew")
    parser.add_argument("--heaptrack", action="store_true",
                        help="record native allocations with heaptrack (see above); output in --out")
    parser.add_argument("--timezone", default="UTC", help="the site's IANA time zone")
    parser.add_argument("--out", type=Path, help="keep outputs, clips, snapshots and soak.csv here "
                                                 "(default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="more vizoflow overrides, e.g. rules.unattended.seconds=10")
    args = parser.parse_args()
    exit_on_sigterm()
    if args.heaptrack and (args.tracemalloc or args.out is None):
        parser.error("--heaptrack needs --out (its output is kept there) and cannot go with --tracemalloc")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="soak-")) if args.out is None else args.out.resolve()
    soak = Soak(args, work)
    try:
        soak.start()
        code = soak.run()
    except StartFailed as exc:
        soak.stop()
        raise SystemExit(str(exc)) from None
    except BaseException:
        soak.stop()
        raise
    finally:
        if args.out is None and (work / "soak.csv").exists():
            shutil.copy(work / "soak.csv", Path.cwd() / "soak.csv")
    soak.report(code)
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
        print("(samples copied to ./soak.csv)")


if __name__ == "__main__":
    main()
