"""Regenerate docs/events.md: events found on every labelled shared clip, and what each person filter does.

For each clip with labels in ``data/labels/shared.csv`` the clip's site runs in batch
mode (``python -m vizoflow +site=<site> mode=batch``) with the default settings, then
again with each filter setting of :data:`FILTERS`. Detection and tracking run once per
clip; every other run replays the track cache (identical results, seconds per run).
Events are scored with ``vizoflow.evaluate`` (one-to-one, temporal IoU >= 0.5).

Temporal matching cannot tell *who* an event is about: on caviar-shop-front a clothes
rack tracked all clip long overlaps, in time, the label of a passer-by the detector
never finds. So for clips with MOT ground truth every event is also checked in space:
it is *on a person* when a track of the event overlaps a ground-truth box (IoU >= 0.3)
on at least 30% of its frames; the tables count the events on no person.

An ``unattended`` label is a visit; only visits longer than the run's threshold are
unattended events, so the labels scored are those visits (the table says how many).

    python bench/events.py             # writes docs/events.md and prints it
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT.parent / "shared" / "footage"
LABELS = ROOT / "data" / "labels" / "shared.csv"
sys.path.insert(0, str(ROOT))

from vizoflow.evaluate import load_labels  # noqa: E402
from vizoflow.mot import person_tracks  # noqa: E402


@dataclass(frozen=True)
class Clip:
    """A labelled clip, the site that watches it, and overrides of this evaluation."""

    name: str
    site: str
    overrides: tuple[str, ...] = ()
    note: str = ""
    unattended_seconds: float = 30.0


CLIPS = (
    Clip("ucf-checkout", "demo", note="the demo site"),
    Clip("intel-one-by-one", "intel_table", unattended_seconds=10.0),
    Clip("caviar-shop-front", "caviar", ("rules.unattended.seconds=2",), unattended_seconds=2.0,
         note="unattended at 2 s, a test setting: at the site's 30 s nothing in 12 s is an event"),
)

OFF = ("filters.score_threshold=0", "filters.min_motion=0")
# Filter settings compared, each against the same track cache; "defaults" is conf/config.yaml.
FILTERS: dict[str, tuple[str, ...]] = {
    "no filters": OFF,
    "score 0.35 only": (*OFF, "filters.score_threshold=0.35"),
    "score 0.45 only": (*OFF, "filters.score_threshold=0.45"),
    "score 0.55 only": (*OFF, "filters.score_threshold=0.55"),
    "stationary only (5 frames, 5%)": (*OFF, "filters.min_motion=0.05", "filters.motion_frames=5"),
    "stationary only (5 frames, 10%)": (*OFF, "filters.min_motion=0.1", "filters.motion_frames=5"),
    "defaults": (),
}


def not_on_people(out: Path, clip: Clip) -> int | None:
    """Ended events none of whose tracks follows a ground-truth person (None: no ground truth)."""
    gt = FOOTAGE / clip.name / "gt.txt"
    if not gt.exists():
        return None
    people = person_tracks(pl.read_parquet(out / "tracks.parquet"), gt)
    ends = pl.read_parquet(out / "events.parquet").filter(pl.col("phase") == "end")
    return sum(not set(ids) & people for ids in ends["track_ids"].to_list())


def run_site(clip: Clip, labels: Path, cache: Path, out: Path, extra: tuple[str, ...]) -> tuple[pl.DataFrame, int | None]:
    """One batch run of ``clip`` with its site; returns its evaluation table and its events on no person."""
    args = [sys.executable, "-m", "vizoflow", f"+site={clip.site}", "mode=batch",
            f"source.path={FOOTAGE / clip.name / 'video.mp4'}", f"batch.cache_dir={cache}", f"output_dir={out}",
            f"evidence.dir={out}/segments", f"eval.labels={labels}", "runtime.progress=false", "graph.preview=null",
            *clip.overrides, *extra]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "YOLO_OFFLINE": "1"})
    if result.returncode != 0:
        raise SystemExit(f"vizoflow failed on {clip.name}:\n{result.stderr[-3000:]}")
    return pl.read_parquet(out / "evaluation.parquet"), not_on_people(out, clip)


def labels_for(clip: Clip, folder: Path) -> tuple[Path, int]:
    """The clip's labels, unattended visits kept only when longer than the threshold."""
    labels = load_labels(LABELS).filter(pl.col("video") == clip.name)
    short = (pl.col("kind") == "unattended") & ((pl.col("end") - pl.col("start")) <= clip.unattended_seconds)
    dropped = labels.filter(short).height
    path = folder / f"{clip.name}.csv"
    labels.filter(~short).select("video", "kind", "start", "end").write_csv(path)
    return path, dropped


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "events.md"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vizoflow-events-") as tmp:
        tmp_path = Path(tmp)
        for clip in CLIPS:
            labels, dropped = labels_for(clip, tmp_path)
            for name, extra in {"defaults": (), **FILTERS}.items():  # defaults first: it fills the cache
                folder = re.sub(r"[^A-Za-z0-9]+", "_", name)  # a Hydra override value: no spaces, brackets, %
                table, off = run_site(clip, labels, tmp_path / "cache", tmp_path / clip.name / folder, extra)
                for r in table.iter_rows(named=True):
                    rows.append({"clip": clip.name, "setting": name, "dropped_labels": dropped, "not_people": off, **r})
                print(f"  {clip.name:18s} {name:32s} " + ", ".join(
                    f"{r['kind']} TP {r['tp']} FP {r['fp']} FN {r['fn']}" for r in table.iter_rows(named=True))
                    + ("" if off is None else f"; on no person {off}"), flush=True)
    results = pl.DataFrame(rows).unique(["clip", "setting", "kind"], keep="first", maintain_order=True)
    text = render(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


def render(results: pl.DataFrame) -> str:
    """The markdown page."""
    notes = {c.name: c for c in CLIPS}
    lines = [
        "# Events on the labelled shared clips",
        "",
        f"Generated by `python bench/events.py` on {date.today()} ({platform.machine()}, shared INT8 YOLO11n at 640, "
        "DeepSORT, `inference.precision=f32`). Labels: `data/labels/shared.csv` (how they were made: "
        "`data/labels/README.md`). A detected event matches a label of the same clip and kind one-to-one with "
        "temporal IoU >= 0.5. P = TP / detected, R = TP / labels, F1 = 2TP / (2TP + FP + FN); – where undefined.",
        "",
        "## With the default settings",
        "",
        "| clip | site | kind | labels | detected | TP | FP | FN | P | R | F1 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    defaults = results.filter(pl.col("setting") == "defaults")
    for r in defaults.iter_rows(named=True):
        lines.append(f"| {r['clip']} | {notes[r['clip']].site} | {r['kind']} | {r['labels']} | {r['detected']} | "
                     f"{r['tp']} | {r['fp']} | {r['fn']} | {fmt(r['precision'])} | {fmt(r['recall'])} | {fmt(r['f1'])} |")
    per_kind = defaults.group_by("kind", maintain_order=True).agg(pl.col("labels", "detected", "tp", "fp", "fn").sum())
    lines += ["", "All clips together:", "", "| kind | labels | detected | TP | FP | FN | P | R | F1 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in per_kind.iter_rows(named=True):
        p = r["tp"] / r["detected"] if r["detected"] else None
        rec = r["tp"] / r["labels"] if r["labels"] else None
        f1 = 2 * r["tp"] / (2 * r["tp"] + r["fp"] + r["fn"]) if (2 * r["tp"] + r["fp"] + r["fn"]) else None
        lines.append(f"| {r['kind']} | {r['labels']} | {r['detected']} | {r['tp']} | {r['fp']} | {r['fn']} | "
                     f"{fmt(p)} | {fmt(rec)} | {fmt(f1)} |")
    lines += ["", "Notes per clip:", ""]
    for clip in CLIPS:
        dropped = results.filter(pl.col("clip") == clip.name)["dropped_labels"].max() or 0
        extra = f"; {dropped} labelled visit(s) not longer than the threshold are not events" if dropped else ""
        off = defaults.filter(pl.col("clip") == clip.name)["not_people"].max()
        extra += f"; events on no ground-truth person: {off}" if off is not None else ""
        lines.append(f"- **{clip.name}** (site `{clip.site}`{', ' + ' '.join(clip.overrides) if clip.overrides else ''})"
                     f"{': ' + clip.note if clip.note else ''}{extra}.")
    lines += ["", "## The person filters, one at a time", "",
              "The same tracks (one detection and tracking run per clip, replayed from the track cache) with each "
              "filter on its own. True events = TP, false events = FP. *On no person*: events whose tracks follow "
              "no ground-truth person (clips with MOT ground truth only; on caviar-shop-front these are the clothes "
              "racks and the mannequin, which temporal matching alone may count as TP).", "",
              "| setting | " + " | ".join(f"{c.name} TP / FP / FN" for c in CLIPS) + " | all: TP / FP / FN | on no person |",
              "|---|" + "---:|" * (len(CLIPS) + 2)]
    for setting in FILTERS:
        cells, total = [], [0, 0, 0]
        for clip in CLIPS:
            sub = results.filter((pl.col("setting") == setting) & (pl.col("clip") == clip.name))
            tp, fp, fn = (int(sub[c].sum()) for c in ("tp", "fp", "fn"))
            total = [total[0] + tp, total[1] + fp, total[2] + fn]
            cells.append(f"{tp} / {fp} / {fn}")
        off = results.filter((pl.col("setting") == setting) & pl.col("not_people").is_not_null())
        off_total = int(off.unique(["clip"])["not_people"].sum()) if off.height else "–"
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {total[0]} / {total[1]} / {total[2]} | {off_total} |")
    lines += ["", CHOICE, ASSUMPTIONS]
    return "\n".join(lines) + "\n"


CHOICE = """## Why these defaults

- **Both filters are needed.** On caviar-shop-front, with no filters, 4 of the 6 events are on things that are
  not people (two clothes racks and the mannequin, tracked as people by the detector and DeepSORT). The score
  filter alone at 0.45 leaves the left rack (its scores reach a median of 0.52); the stationary filter alone
  leaves three low-score tracks on racks and the mannequin whose boxes jump between frames (jitter of weak
  detections, id swaps with the passing shopper). Together: no event on a non-person.
- **Score 0.45, not higher.** 0.55 alone also leaves no event on a non-person here, but it leaves untrusted
  three tracks of real people on ucf-checkout whose score medians peak between 0.45 and 0.55 (watched: the
  customer in royal blue at lane 2, the child by the window, a person behind lane 1). Far, small or partly
  hidden people score low with the small INT8 model; footage we do not have will have more of them.
- **Stationary 5% of the box height on 5 frames, not 10%.** 10% loses the queue at lane 2 on ucf-checkout
  (people standing at a till move less than that) and removes nothing more on caviar.
- **Area and aspect limits and masks are off by default**: they depend on the camera. Tracked boxes in these
  clips (1st-99th percentile, all tracks): area 0.3-1.2% of the frame on caviar-shop-front, 0.7-9% on
  ucf-checkout, 6-26% on intel-one-by-one; width/height 0.16-1.15. No one limit fits all three cameras.
- The remaining false event on caviar-shop-front (with the test threshold of 2 s) is a second track on the
  shopper: one person, two tracks, two events. Person filters cannot remove it; it is a tracking error.
"""

ASSUMPTIONS = """## What the checkout footage breaks, and how the demo site handles it

- **Feet hidden by counters.** Behind a counter a box ends where the counter cuts the person off, not at the
  feet. Zones are drawn where those box bottoms fall (checked on frames 0, 180 and 354), not on the floor.
- **The next lane's cashier is closer than this lane's.** Lane 2's cashier stands back to back with lane 1's
  customers, 25 px from them, while lane 1's cashier is 80 px away across the counter. Distance alone pairs
  the wrong people: `rules.interaction.pairs` ties each till to its own lane.
- **Staff who are not at a till.** A packer in white gloves moves between lane 1's end and the counter
  bottom-left. His places are a staff zone (`packer`) so he is never a customer; he is not paired with a
  lane, so bagging a customer's goods is not an interaction (not labelled as one either).
- **One customer served by two staff.** From 9.1 s the packer bags for the customer the cashier is serving.
  With `pairs` unset this gives two interactions, one per staff member (tested on synthetic tracks).
- **Staff stepping out.** A track stays staff once it has spent `staff.min_seconds` in a staff zone, so a
  cashier who walks round the counter does not become a customer.
- **Roles are known late.** The cashier is staff only after 5 s behind the till; both interactions still
  start at the clip's first frames, because rules date events from when the condition first held.
- **People hidden by screens.** The navy-cap customer at lane 1 is behind the register's monitor most of the
  clip and is detected only at the end; the queue at lane 1 is found from the others. A queue of 3 there
  (1.4-7.6 s) would not be seen, which is one reason the site counts 2 or more.
- **Lane 2's roles cannot be verified** at 320x240 (lower bodies hidden): its till is a staff zone, but it is
  not paired with its lane, and its probable interaction is not scored.
"""


if __name__ == "__main__":
    main()
