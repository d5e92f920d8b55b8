"""Detector cost: the shipped detector alone, against the same detector inside the pipeline.

The detector is what limits the cameras one machine holds (``bench/cameras.py``), so two
things matter: that the detect node costs inside the pipeline what the detector costs
alone (no decode thread, tracker or encoder slowing it down), and what a detector shared
by several cameras does with one frame per camera per call. On a shared,
noisy 2-core machine such differences only show side by side, so every row runs in ONE
process and interleaved: each repetition runs every row once, in an order rotated between
repetitions, and the tables show medians and ratios taken within one repetition.

Rows (the same :class:`~vizoflow.nodes.detect.YoloDetector` instance, built from the
demo site's config as ``python -m vizoflow +site=demo`` builds it):

* ``alone k=N``: ``process_batch`` over frames decoded into memory beforehand, N frames
  per call: 1; 4, what ``runtime.batch_size: 4`` hands the detect node; 2 and 4, one
  round of a detector shared by 2 or 4 cameras.
* ``detect/memory``, ``detect/file``, ``demo/file``: the detect node's ms/frame from the
  runtime's statistics: the detect node alone on pre-decoded frames, alone from the file
  source (its decode thread running), and the whole demo graph (tracker, rules, preview,
  evidence). Each of these runs also calls the detector alone, one frame per call, right
  after every batch's detect on the same images (:class:`InRunReference`): ``in-run``
  compares pipeline and detector half a second apart instead of a run apart, the
  steadier number on this machine.

``others`` is the share of both cores other processes took while a row ran (/proc/stat,
steal included; 0% is a quiet machine). Last, the boxes of k frames per call are compared
with one frame per call: a shared detector must give each camera the boxes it would get
alone. Findings and what was decided from them: ``docs/detector.md``.

    python bench/detector.py [--clip ucf-checkout] [--frames 96] [--pipe-frames 48] [--reps 3]
                             [--rows "alone k=1;demo/file"]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
from common import FOOTAGE  # also puts the project on sys.path
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from vizoflow.cli import CONF_DIR
from vizoflow.frame import Frame
from vizoflow.graph import build_nodes
from vizoflow.inference import cpu_facts
from vizoflow.pipeline import build_source
from vizoflow.runtime import Runtime
from vizoflow.video import decode

# name -> (kind, what): "alone" takes frames per call, "pipe" (graph, source).
ROWS: dict[str, tuple[str, Any]] = {
    "alone k=1": ("alone", 1),
    "alone k=2": ("alone", 2),
    "alone k=4": ("alone", 4),
    "detect/memory": ("pipe", ("detect", "memory")),
    "detect/file": ("pipe", ("detect", "file")),
    "demo/file": ("pipe", ("demo", "file")),
}
REFERENCE = "alone k=1"  # every "vs alone" ratio is to this row of the same repetition
logging.getLogger("vizoflow").setLevel(logging.ERROR)  # the shared clips' "no creation_time tag": expected here


# --------------------------------------------------------------------------- measuring


def _busy_jiffies() -> int:
    """Busy CPU time of the whole machine (all processes), in clock ticks."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return user + nice + system + irq + softirq + steal


def _own_jiffies() -> int:
    """CPU time of this process (all its threads), in clock ticks."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@contextlib.contextmanager
def others_load(out: dict[str, float]) -> Iterator[None]:
    """Measure the share of both cores that *other* processes used meanwhile (into ``out['others']``).

    The machine is shared: a test run elsewhere during one row and not another would read
    as a difference between rows; this number shows when that happened.
    """
    ticks, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    busy0, own0, t0 = _busy_jiffies(), _own_jiffies(), time.perf_counter()
    yield
    wall = time.perf_counter() - t0
    foreign = (_busy_jiffies() - busy0) - (_own_jiffies() - own0)
    out["others"] = max(0.0, foreign / ticks / (wall * cores))


@dataclass
class Sample:
    """One row, one repetition."""

    ms_per_frame: float
    others: float
    reference: float | None = None  # pipeline rows: the in-run reference's ms/frame
    note: str = ""


def fresh(frame: Frame) -> Frame:
    """A new frame on the same pixels: nodes write their results into frames, runs must not share them."""
    return Frame(video=frame.video, index=frame.index, timestamp=frame.timestamp, image=frame.image, epoch=frame.epoch)


# --------------------------------------------------------------------------- the pipeline


def demo_cfg(video: Path, out: Path) -> DictConfig:
    """The demo site's config on ``video``, as ``python -m vizoflow +site=demo`` composes it, writing into ``out``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["+site=demo", f"source.path={video}", f"output_dir={out}",
                                            f"evidence.dir={out}/segments", "runtime.progress=false"])


class MemorySource:
    """Pre-decoded frames as a pipeline source: the pipeline without any decoding."""

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[Frame]:
        return (fresh(f) for f in self.frames)

    def close(self) -> None:
        """Nothing to stop."""


class FirstFrames:
    """The first ``n`` frames of a real source (the file source, decode thread and all)."""

    def __init__(self, source: Any, n: int) -> None:
        self.source, self.n = source, n

    def __iter__(self) -> Iterator[Frame]:
        frames = iter(self.source)
        try:
            yield from itertools.islice(frames, self.n)
        finally:
            frames.close()  # type: ignore[attr-defined]  # stops the decode thread

    def close(self) -> None:
        """Stop the source."""
        self.source.close()


class InRunReference:
    """A node right after ``detect`` that runs the detector alone on the images detect just had.

    Whole runs several seconds apart see different load on this shared machine (even when
    no other process shows in /proc/stat). After a batch's detect the decode thread has
    refilled its queue and sleeps and no other node runs, so this node times the detector
    alone, one frame per call, interleaved with the pipeline every half second or so.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def process_batch(self, frames: list[Frame]) -> list[Frame]:
        for frame in frames:
            self.detector.process(fresh(frame))
        return frames

    def process(self, frame: Frame) -> Frame:
        return self.process_batch([frame])[0]


def run_pipe(graph: str, source: str, frames: list[Frame], video: Path, detector: Any) -> Sample:
    """The detect node's ms/frame over ``frames`` (their count) in the pipeline ``graph`` fed by ``source``."""
    with tempfile.TemporaryDirectory(prefix="vizo-bench-detector-") as out:
        cfg = demo_cfg(video, Path(out))
        others = set(cfg.graph) - {"detect"} if graph == "demo" else set()
        nodes = [("detect", detector), ("reference", InRunReference(detector)), *build_nodes(cfg.graph, only=others)]
        feed = MemorySource(frames) if source == "memory" else FirstFrames(build_source(cfg), len(frames))
        load: dict[str, float] = {}
        with others_load(load):
            stats = Runtime(feed, nodes, batch_size=cfg.runtime.batch_size, progress=False).run()
    ms = {name: 1000 * seconds / stats.frames for name, seconds in stats.node_seconds.items()}
    note = f"track {ms['track']:.0f} ms/frame" if "track" in ms else ""
    return Sample(ms["detect"], load["others"], ms["reference"], note)


def run_alone(detector: Any, frames: list[Frame], k: int) -> tuple[Sample, list[np.ndarray]]:
    """The detector alone over in-memory frames, ``k`` per call; also the boxes of every frame."""
    load: dict[str, float] = {}
    batches = [[fresh(f) for f in frames[i:i + k]] for i in range(0, len(frames), k)]
    with others_load(load):
        t0 = time.perf_counter()
        for batch in batches:
            detector.process_batch(batch)
        seconds = time.perf_counter() - t0
    return Sample(1000 * seconds / len(frames), load["others"]), [f.detections.xyxy for b in batches for f in b]


# --------------------------------------------------------------------------- tables


def box_diff(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int]:
    """Max abs difference (px) between matched boxes of two runs, and frames whose box counts differ."""
    worst, mismatched = 0.0, 0
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y):
            mismatched += 1
        elif len(x):
            d = np.abs(x[:, None, :] - y[None, :, :]).max(axis=2)  # every box against every box
            worst = max(worst, float(d.min(axis=1).max()))
    return worst, mismatched


def rotations(names: list[str], reps: int) -> Iterator[tuple[int, list[str]]]:
    """Each repetition's run order: the list rotated by one more place each time."""
    for rep in range(reps):
        shift = rep % len(names)
        yield rep, names[shift:] + names[:shift]


def spread(values: list[float]) -> str:
    """``min-max`` of several values, empty for one."""
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""


def report(names: list[str], samples: dict[str, list[Sample]], ratios: dict[str, list[float]]) -> None:
    """The medians per row; the legend printed before it says what each column is."""
    print(f"\n{'row':16s} {'ms/frame':>8s} {'frames/s':>8s} {'vs alone':>8s} {'in-run':>7s} {'ratio':>6s}"
          f" {'spread':>10s} {'+ms':>6s} {'others':>8s}  note")
    for name in names:
        ss = samples[name]
        ms = statistics.median(s.ms_per_frame for s in ss)
        others = [100 * s.others for s in ss]
        line = f"{name:16s} {ms:8.2f} {1000 / ms:8.1f} {statistics.median(ratios[name]):7.2f}x"
        if ss[0].reference is not None:
            in_run = [s.ms_per_frame / s.reference for s in ss]  # type: ignore[operator]
            line += (f" {statistics.median(s.reference for s in ss):7.2f} {statistics.median(in_run):5.2f}x"
                     f" {spread(in_run):>10s} {statistics.median(s.ms_per_frame - s.reference for s in ss):+6.2f}")
        else:
            line += f" {'':7s} {'':6s} {'':10s} {'':6s}"
        print(f"{line} {statistics.median(others):3.0f}/{max(others):3.0f}%  {ss[-1].note}")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="ucf-checkout",
                        help="shared clip: the demo site's, or another 4:3 one (the demo's zones are scaled to it)")
    parser.add_argument("--frames", type=int, default=96, help="frames for the alone and detect rows")
    parser.add_argument("--pipe-frames", type=int, default=48, help="frames for the demo row (tracker and all)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--rows", default="", help=f"rows separated by ';' (default all: {'; '.join(ROWS)})")
    args = parser.parse_args()
    names = [n.strip() for n in args.rows.split(";") if n.strip()] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows: {unknown}; known: {'; '.join(ROWS)}")
    names = [REFERENCE, *(n for n in names if n != REFERENCE)]  # the reference of every ratio first
    video = FOOTAGE / args.clip / "video.mp4"

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        detector = dict(build_nodes(demo_cfg(video, Path(out)).graph, only={"detect"}))["detect"]
    frames: list[Frame] = []
    with contextlib.closing(decode(video)) as decoded:
        for index, seconds, image in itertools.islice(decoded, max(args.frames, args.pipe_frames)):
            frames.append(Frame(video=video.stem, index=index, timestamp=seconds, image=image))
    facts = cpu_facts()
    print(f"cpu: {facts['cpu']}, {os.cpu_count()} cores, bf16 {'yes' if facts['bf16_supported'] else 'no'};"
          f" detector {Path(detector.model_path).name} runs in {detector.precision};"
          f" {args.clip}: {args.frames} frames per alone/detect row, {args.pipe_frames} per demo row,"
          f" {args.reps} interleaved repetitions", flush=True)

    boxes: dict[int, list[np.ndarray]] = {}  # k -> every frame's boxes at k frames per call

    def run(name: str) -> Sample:
        kind, what = ROWS[name]
        if kind == "alone":
            sample, boxes[what] = run_alone(detector, frames[:args.frames], what)
            return sample
        graph, source = what
        return run_pipe(graph, source, frames[:args.pipe_frames if graph == "demo" else args.frames], video, detector)

    samples: dict[str, list[Sample]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for rep, order in rotations(names, args.reps):
        this = {}
        for name in order:
            this[name] = sample = run(name)
            samples[name].append(sample)
            print(f"  rep {rep + 1}/{args.reps}  {name:16s} {sample.ms_per_frame:7.2f} ms/frame  others"
                  f" {100 * sample.others:3.0f}%  {sample.note}", flush=True)
        for name, sample in this.items():
            ratios[name].append(sample.ms_per_frame / this[REFERENCE].ms_per_frame)

    print(f"\nms/frame: the detector's, median of {args.reps}; frames/s: 1000 / ms/frame; vs alone: ratio to"
          f" '{REFERENCE}' in the same repetition;\nin-run: the detector alone inside the same run (ms/frame), the"
          " ratio to it (median, min-max) and the difference; others: CPU share\nother processes took meanwhile"
          " (median/max)")
    report(names, samples, ratios)
    for k in sorted(boxes):
        if k != 1 and 1 in boxes:
            worst, mismatched = box_diff(boxes[k], boxes[1])
            print(f"boxes, {k} frames per call against 1: max difference {worst:.4f} px, {mismatched} frames with"
                  " another box count")
    print(f"\nbench took {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
