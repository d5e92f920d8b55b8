"""vizoflow against the plain script (bench/baseline.py), side by side in one process.

Each repetition runs the baseline and every vizoflow setting on the same clip, in
an order that rotates between repetitions so drift on a shared machine hits all
alike; the table shows medians. Rows:

* ``(a)`` vizoflow with exactly the baseline's components (stock embedder): the
  framework's own cost. Target >= 0.95x the baseline.
* ``(b)`` vizoflow's defaults (OpenVINO embedder). Target >= 3x on tud-campus.
* ``(c)`` fast settings, each with IDF1 against the clip's MOT ground truth.

    python bench/compare.py [--clip tud-campus] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics

from baseline import DEFAULT_MODEL, run_baseline
from common import FOOTAGE, SETTINGS, Measured, run_vizoflow, score, zone_of

ROWS = {"deepsort stock embedder": "(a)", "deepsort (default)": "(b)", "defaults, full graph": "(b)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="tud-campus", help="a folder of ../shared/footage")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--full-graph", action="store_true", help="also run the (b) row with every default node")
    args = parser.parse_args()
    video = FOOTAGE / args.clip / "video.mp4"
    import numpy as np
    import polars as pl

    runs: dict[str, list[Measured]] = {}
    names = ["baseline", *SETTINGS] + (["defaults, full graph"] if args.full_graph else [])
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            if name == "baseline":
                r = run_baseline(video, DEFAULT_MODEL, np.asarray(zone_of(video)))
                tracks = pl.DataFrame(r["rows"], schema=["frame", "track_id", "x1", "y1", "x2", "y2", "confidence"],
                                      orient="row")
                m = Measured(frames=r["frames"], seconds=r["seconds"], tracks=tracks)
            elif name == "defaults, full graph":
                m = run_vizoflow(video, [], full_graph=True)
            else:
                m = run_vizoflow(video, SETTINGS[name])
            runs.setdefault(name, []).append(m)
            print(f"  rep {rep + 1}/{args.reps} {name:28s} {m.fps:6.2f} fps", flush=True)

    base_fps = statistics.median(m.fps for m in runs["baseline"])
    base_score = score(runs["baseline"][0], args.clip)
    print(f"\n{args.clip}: median of {args.reps} runs; ratio = fps / baseline fps; "
          "overhead = share of time outside detector and tracker")
    print(f"{'row':4s} {'setting':28s} {'fps':>6s} {'ratio':>6s} {'overhead':>8s} {'IDF1':>6s} {'HOTA':>6s} {'MOTA':>6s}")
    for name in names:
        fps = statistics.median(m.fps for m in runs[name])
        s = score(runs[name][0], args.clip) if name != "baseline" else base_score
        over = "" if name == "baseline" else f"{100 * statistics.median(m.overhead() for m in runs[name]):7.1f}%"
        row = ROWS.get(name, "" if name == "baseline" else "(c)")
        metrics = f"{s.idf1:6.1f} {s.hota:6.1f} {s.mota:6.1f}" if s else f"{'-':>6s} {'-':>6s} {'-':>6s}"
        print(f"{row:4s} {name:28s} {fps:6.2f} {fps / base_fps:5.2f}x {over:>8s} {metrics}")


if __name__ == "__main__":
    main()
