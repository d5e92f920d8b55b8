"""Soak test: the live command on a looping RTSP camera for minutes; input vs processed fps, drops, RSS.

Serves a shared clip (default intel-one-by-one, 768x432) over RTSP at 10 fps with
Debian's GStreamer RTSP server on 127.0.0.1, runs ``python -m vizoflow +site=store42``
against it with the status endpoint on, samples ``/metrics`` and the process's RSS
every ``--every`` seconds, then stops it with SIGTERM. Targets: processed >= input
(no sustained drops) and RSS growth under 50 MB over 10 minutes.

    python bench/soak.py [--minutes 10] [--clip intel-one-by-one]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rtsp_camera import Camera, free_port, write_annexb  # noqa: E402

FOOTAGE = ROOT.parent / "shared" / "footage"
WARM_UP = 60.0  # seconds before the "start" sample: models loaded, the server's initial burst over


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) / 1024


def metrics(port: int) -> dict[str, float]:
    """The vizoflow_* gauges of the status endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^vizoflow_(\w+) (\S+)$", r.read().decode(), re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", default="intel-one-by-one")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        camera = Camera(write_annexb(FOOTAGE / args.clip / "video.mp4", tmp / "clip.h264"), free_port(), args.fps)
        camera.start()
        port = free_port()
        env = {**os.environ, "STORE42_RTSP_URL": camera.url, "YOLO_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "vizoflow", "+site=store42", f"output_dir={tmp}/out",
               f"evidence.dir={tmp}/segments", "evidence.upload_url=null", "evidence.incident_url=null",
               f"status.port={port}", "status.interval=60"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp / "console.txt", "w"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:  # wait until the pipeline processes frames
                try:
                    if metrics(port).get("frames_processed", 0) > 0:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("vizoflow did not start: " + (tmp / "console.txt").read_text()[-2000:])
                time.sleep(1)
            time.sleep(WARM_UP)
            t0, m0, rss0 = time.monotonic(), metrics(port), rss_mb(proc.pid)
            print(f"start: RSS {rss0:.0f} MB, {m0['frames_received']:.0f} frames received", flush=True)
            end = t0 + 60 * args.minutes
            peak = rss0
            while time.monotonic() < end:
                time.sleep(min(args.every, max(0.0, end - time.monotonic())))
                m, rss = metrics(port), rss_mb(proc.pid)
                peak = max(peak, rss)
                el = time.monotonic() - t0
                print(f"  {el / 60:5.1f} min: in {(m['frames_received'] - m0['frames_received']) / el:5.2f} fps, "
                      f"processed {(m['frames_processed'] - m0['frames_processed']) / el:5.2f} fps, "
                      f"dropped {m['frames_dropped'] - m0['frames_dropped']:.0f}, RSS {rss:.0f} MB", flush=True)
            t1, m1, rss1 = time.monotonic(), metrics(port), rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            camera.kill()
        seconds = t1 - t0
        received = m1["frames_received"] - m0["frames_received"]
        processed = m1["frames_processed"] - m0["frames_processed"]
        dropped = m1["frames_dropped"] - m0["frames_dropped"]
        print(f"\nsoak {args.clip} @ {args.fps} fps for {seconds / 60:.1f} min (after {WARM_UP:.0f} s warm-up), "
              f"exit code {proc.returncode}")
        print(f"  input fps      {received / seconds:6.2f}")
        print(f"  processed fps  {processed / seconds:6.2f}  ({processed / max(received, 1):.3f} of input)")
        print(f"  dropped        {dropped:6.0f}  ({dropped / max(received, 1):.2%} of received)")
        print(f"  RSS            {rss0:6.0f} MB at start, {rss1:.0f} MB at end, peak {peak:.0f} MB: "
              f"growth {rss1 - rss0:+.0f} MB")
        print(f"  reconnects     {m1['reconnects'] - m0['reconnects']:6.0f}")


if __name__ == "__main__":
    main()
