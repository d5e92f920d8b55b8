"""Soak test: the live command on a looping RTSP camera for minutes or hours, unattended.

Serves a shared clip (default intel-one-by-one, 768x432) over RTSP at 10 fps with
Debian's GStreamer RTSP server on 127.0.0.1, runs ``python -m vizoflow +site=store42 ~cameras.checkout`` (its entrance camera)
against it with the status endpoint on, samples ``/metrics``, ``/health``, the
process's RSS and the disk used by its outputs every ``--every`` seconds (all samples
go to ``soak.csv``), prints a summary line every ``--report-minutes``, then stops it
with SIGTERM and prints a verdict.

Verdict (each a target; FAIL names the ones missed):
  * exit code 0 after SIGTERM;
  * processed >= 0.95 x input frames over the run (after the warm-up);
  * memory bounded: RSS grows by under 50 MB from the end of the first quarter to the end;
  * evidence keeps up: nothing failed, at most 3 clips pending at the end;
  * healthy at the end (``/health`` 200).

A day-long run, started unattended and kept with its outputs (daily files, clips)::

    nohup .venv/bin/python bench/soak.py --minutes 1440 --out soak-day > soak-day.log 2>&1 &

``--timezone`` sets the site's zone, e.g. one whose midnight falls inside the run to see
the daily metrics files roll over (``Pacific/Kiritimati`` is UTC+14).

    python bench/soak.py [--minutes 10] [--clip intel-one-by-one] [--out DIR] [--timezone UTC]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import rss_mb  # noqa: E402
from tests.rtsp_camera import Camera, free_port, write_annexb  # noqa: E402

FOOTAGE = ROOT.parent / "shared" / "footage"
WARM_UP = 60.0  # seconds before the "start" sample: models loaded, the server's initial burst over
COLUMNS = ["minutes", "input_fps", "processed_fps", "received", "processed", "dropped", "reconnects", "rss_mb",
           "open_events", "evidence_pending", "evidence_failed", "clips_written", "disk_mb", "day_files", "healthy"]


def metrics(port: int) -> dict[str, float]:
    """The vizoflow_* gauges of the status endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^vizoflow_(\w+) (\S+)$", r.read().decode(), re.M)}


def healthy(port: int) -> bool:
    """Whether ``/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False


def disk_mb(folder: Path) -> float:
    """Bytes under ``folder`` (clips, tables, metrics, outbox), in MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class Soak:
    """One soak run: the camera, the vizoflow process, samples and the verdict."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.out = work / "out"
        self.rows: list[dict[str, float]] = []

    def start(self) -> None:
        """Serve the clip and start ``vizoflow +site=store42`` against it; wait until it processes frames."""
        a = self.args
        self.camera = Camera(write_annexb(FOOTAGE / a.clip / "video.mp4", self.work / "clip.h264"), fps=a.fps)
        self.camera.start()
        self.port = free_port()
        env = {**os.environ, "STORE42_ENTRANCE_URL": self.camera.url, "YOLO_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "vizoflow", "+site=store42", "~cameras.checkout", f"output_dir={self.out}",
               f"evidence.dir={self.work}/segments", "evidence.upload_url=null", "evidence.incident_url=null",
               f"status.port={self.port}", "status.interval=60", f"timezone={a.timezone}", *a.overrides]
        self.console = self.work / "console.txt"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(self.console, "w"),  # noqa: SIM115 - the child's console, open while it runs
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            try:
                if metrics(self.port).get("frames_processed", 0) > 0:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("vizoflow did not start: " + self.console.read_text()[-2000:])
            time.sleep(1)

    def sample(self, t0: float, m0: dict[str, float]) -> dict[str, float]:
        """One row: rates since the start sample, current gauges, RSS, disk."""
        m, el = metrics(self.port), time.monotonic() - t0
        received, processed = m["frames_received"] - m0["frames_received"], m["frames_processed"] - m0["frames_processed"]
        row = {"minutes": el / 60, "input_fps": received / el if el else 0.0,
               "processed_fps": processed / el if el else 0.0, "received": received, "processed": processed,
               "dropped": m["frames_dropped"] - m0["frames_dropped"], "reconnects": m["reconnects"] - m0["reconnects"],
               "rss_mb": rss_mb(self.proc.pid), "open_events": m.get("open_events", 0.0),
               "evidence_pending": m.get("evidence_pending", 0.0), "evidence_failed": m.get("evidence_failed", 0.0),
               "clips_written": m.get("clips_written", 0.0), "disk_mb": disk_mb(self.work / "segments") + disk_mb(self.out),
               "day_files": len(list(self.out.glob("analytics_metrics_*.json"))), "healthy": float(healthy(self.port))}
        self.rows.append(row)
        return row

    def run(self) -> int:
        """Sample until the end, print summaries and the verdict; returns the process exit code."""
        a = self.args
        time.sleep(WARM_UP)
        t0, m0 = time.monotonic(), metrics(self.port)
        first = self.sample(t0, m0)
        print(f"start: RSS {first['rss_mb']:.0f} MB after {WARM_UP:.0f} s warm-up; samples every {a.every:.0f} s "
              f"in {self.work / 'soak.csv'}", flush=True)
        print("  minutes  in fps  proc fps  dropped  RSS MB  open ev  pending  failed  clips  disk MB  days  health",
              flush=True)
        end, next_report = t0 + 60 * a.minutes, t0 + 60 * a.report_minutes
        with open(self.work / "soak.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            while time.monotonic() < end:
                time.sleep(min(a.every, max(0.0, end - time.monotonic())))
                row = self.sample(t0, m0)
                writer.writerow({k: round(v, 3) for k, v in row.items()})
                fh.flush()
                if time.monotonic() >= next_report or time.monotonic() >= end:
                    next_report += 60 * a.report_minutes
                    print(f"  {row['minutes']:7.1f} {row['input_fps']:7.2f} {row['processed_fps']:9.2f} "
                          f"{row['dropped']:8.0f} {row['rss_mb']:7.0f} {row['open_events']:8.0f} "
                          f"{row['evidence_pending']:8.0f} {row['evidence_failed']:7.0f} {row['clips_written']:6.0f} "
                          f"{row['disk_mb']:8.1f} {row['day_files']:5.0f}  {'ok' if row['healthy'] else 'UNHEALTHY'}",
                          flush=True)
        return self.stop()

    def stop(self) -> int:
        """SIGTERM, wait, stop the camera; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.camera.kill()
        return self.proc.returncode

    def verdict(self, code: int) -> list[str]:
        """Targets missed (empty: PASS)."""
        last, quarter = self.rows[-1], self.rows[max(0, len(self.rows) // 4)]
        missed = []
        if code != 0:
            missed.append(f"exit code {code}")
        if last["processed"] < 0.95 * last["received"]:
            missed.append(f"processed {last['processed'] / max(last['received'], 1):.3f} of input (< 0.95)")
        if last["rss_mb"] - quarter["rss_mb"] >= 50:
            missed.append(f"RSS grew {last['rss_mb'] - quarter['rss_mb']:.0f} MB after the first quarter (>= 50)")
        if last["evidence_failed"] > 0 or last["evidence_pending"] > 3:
            missed.append(f"evidence: {last['evidence_failed']:.0f} failed, {last['evidence_pending']:.0f} pending")
        if not last["healthy"]:
            missed.append("/health not ok at the end")
        return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", default="intel-one-by-one")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (soak.csv)")
    parser.add_argument("--report-minutes", type=float, default=5.0, help="minutes between summary lines")
    parser.add_argument("--timezone", default="UTC", help="the site's IANA time zone")
    parser.add_argument("--out", type=Path, help="keep outputs, clips and soak.csv here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="more vizoflow overrides, e.g. rules.unattended.seconds=10")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="soak-")) if args.out is None else args.out.resolve()
    soak = Soak(args, work)
    soak.start()
    try:
        code = soak.run()
    except BaseException:
        soak.stop()
        raise
    finally:
        if args.out is None and (work / "soak.csv").exists():
            shutil.copy(work / "soak.csv", Path.cwd() / "soak.csv")
    last = soak.rows[-1]
    rss = [r["rss_mb"] for r in soak.rows]
    print(f"\nsoak {args.clip} @ {args.fps} fps for {last['minutes']:.1f} min (after {WARM_UP:.0f} s warm-up), "
          f"timezone {args.timezone}, exit code {code}")
    print(f"  input fps      {last['input_fps']:6.2f}")
    print(f"  processed fps  {last['processed_fps']:6.2f}  ({last['processed'] / max(last['received'], 1):.3f} of input)")
    print(f"  dropped        {last['dropped']:6.0f}  ({last['dropped'] / max(last['received'], 1):.2%} of received)")
    print(f"  RSS            {rss[0]:6.0f} MB at start, {rss[-1]:.0f} MB at end, peak {max(rss):.0f} MB")
    print(f"  reconnects     {last['reconnects']:6.0f}")
    print(f"  clips          {last['clips_written']:6.0f} written, {last['evidence_pending']:.0f} pending, "
          f"{last['evidence_failed']:.0f} failed; outputs {last['disk_mb']:.1f} MB; {last['day_files']:.0f} day file(s)")
    missed = soak.verdict(code)
    print("verdict: PASS" if not missed else "verdict: FAIL: " + "; ".join(missed))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
        print("(samples copied to ./soak.csv)")


if __name__ == "__main__":
    main()
