"""What the detect gate buys: frames/s and detector calls, today's settings against the defaults, side by side.

Each repetition runs every setting on each clip in a rotating order (drift on a
shared machine hits all alike), the whole default graph except the preview, in
process. Per clip and setting the table gives the median frames/s (frames of the
video per wall second, clips cut from every frame), the detector calls per second of
video, and the events found. Clips: ucf-checkout (busy: 15 people, 30 fps, the
demo), intel-one-by-one (quiet: one person at a time, 10 fps), ucf-clothing-table
(two people, 20 fps).

    python bench/gate.py [--reps 3] [--clips ucf-checkout,intel-one-by-one]
"""

from __future__ import annotations

import argparse
import statistics

from common import EVERY_FRAME, FOOTAGE, TODAY, Measured, run_vizoflow

SETTINGS: dict[str, list[str]] = {
    "today (every frame)": TODAY,
    "every frame, features reused": EVERY_FRAME,
    "detect 5 fps, no motion": ["detect.motion=false"],
    "default (5 fps + motion)": [],
}
SITES = {"ucf-checkout": "demo", "intel-one-by-one": "intel_table", "ucf-clothing-table": "clothing",
         "caviar-shop-front": "caviar"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clips", default="ucf-checkout,intel-one-by-one,ucf-clothing-table")
    args = parser.parse_args()
    clips = args.clips.split(",")
    runs: dict[tuple[str, str], list[Measured]] = {}
    names = list(SETTINGS)
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for clip in clips:
            for name in order:
                m = run_vizoflow(FOOTAGE / clip / "video.mp4", [f"+site={SITES[clip]}", *SETTINGS[name]],
                                 full_graph=True)
                runs.setdefault((clip, name), []).append(m)
                print(f"  rep {rep} {clip:20s} {name:26s} {m.fps:6.1f} fps", flush=True)
    print("\n| clip | setting | frames/s (median) | vs today | detector calls per video second | "
          "appearance features computed (of all) | events |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for clip in clips:
        today = statistics.median(m.fps for m in runs[clip, names[0]])
        for name in names:
            ms = runs[clip, name]
            fps = statistics.median(m.fps for m in ms)
            m = ms[-1]
            looked = len(m.processed) if m.processed is not None else m.frames
            seconds = m.video_seconds or 1.0
            done, reused = m.appearance.get("appearance_computed", 0.0), m.appearance.get("appearance_reused", 0.0)
            share = f"{done:.0f} ({done / (done + reused):.0%})" if done + reused else "–"
            print(f"| {clip} | {name} | {fps:.1f} | {fps / today:.2f}x | {looked / seconds:.1f} | {share} | "
                  f"{m.events} |")


if __name__ == "__main__":
    main()
