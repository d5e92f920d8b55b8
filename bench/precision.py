"""Speed of each inference precision (f32, bf16, auto), measured side by side in one run.

The detector runs on the frames of a clip and the embedder on its person crops, once per
precision per repetition, in rotating order; the medians are compared with f32. Each row
also says which precision OpenVINO really ran: a CPU without bf16 runs a bf16 request
in f32, and then the ratio is ~1.0 by construction.

    python bench/precision.py [--clip ucf-checkout] [--frames 60] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT.parent / "shared" / "footage"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from vizoflow.frame import Frame  # noqa: E402
from vizoflow.inference import PRECISIONS, cpu_facts  # noqa: E402
from vizoflow.nodes.detect import YoloDetector  # noqa: E402
from vizoflow.reid import OpenVinoEmbedder  # noqa: E402


def frames_of(clip: str, count: int) -> list[np.ndarray]:
    with av.open(str(FOOTAGE / clip / "video.mp4")) as container:
        return [f.to_ndarray(format="bgr24") for _, f in zip(range(count), container.decode(video=0))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="ucf-checkout")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    images = frames_of(args.clip, args.frames)
    detectors = {p: YoloDetector(precision=p) for p in PRECISIONS}
    embedders = {p: OpenVinoEmbedder(precision=p) for p in PRECISIONS}
    boxes = detectors["f32"].process_batch([Frame("v", i, i / 30, im) for i, im in enumerate(images)])
    crops = [im[int(y1):int(y2), int(x1):int(x2)] for f, im in zip(boxes, images) for x1, y1, x2, y2 in f.detections.xyxy]
    detect_ms: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    embed_ms: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for rep in range(args.reps):
        order = PRECISIONS[rep % len(PRECISIONS):] + PRECISIONS[:rep % len(PRECISIONS)]
        for p in order:
            start = time.perf_counter()
            for i, im in enumerate(images):
                detectors[p].process(Frame("v", i, i / 30, im))
            detect_ms[p].append(1000 * (time.perf_counter() - start) / len(images))
            start = time.perf_counter()
            for i in range(0, len(crops), 16):  # a frame's worth of people per call
                embedders[p].predict(crops[i:i + 16])
            embed_ms[p].append(1000 * (time.perf_counter() - start) / max(len(crops), 1))
    facts = cpu_facts()
    print(f"CPU {facts['cpu']}, bf16 {'yes' if facts['bf16_supported'] else 'no'}, "
          f"OpenVINO default {facts['openvino_default_precision']}; {args.clip}, {len(images)} frames, "
          f"{len(crops)} person crops, median of {args.reps}")
    print(f"{'setting':8s} {'detector ran':>12s} {'ms/frame':>9s} {'vs f32':>7s} "
          f"{'embedder ran':>12s} {'ms/crop':>8s} {'vs f32':>7s}")
    base_d, base_e = statistics.median(detect_ms["f32"]), statistics.median(embed_ms["f32"])
    for p in PRECISIONS:
        d, e = statistics.median(detect_ms[p]), statistics.median(embed_ms[p])
        print(f"{p:8s} {detectors[p].precision:>12s} {d:9.1f} {base_d / d:6.2f}x {embedders[p].precision:>12s} "
              f"{e:8.2f} {base_e / e:6.2f}x")


if __name__ == "__main__":
    main()
