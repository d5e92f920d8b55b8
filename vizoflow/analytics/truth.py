"""Store figures of ground-truth tracks: MOT ``gt.txt`` boxes fed through the store node.

Truth and detection then share one definition of a crossing and a visit (the same
code), so a difference between them is the detector's and the tracker's doing.
Every ground-truth person is trusted and a customer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import supervision as sv

from vizoflow.frame import Frame
from vizoflow.nodes.store import StoreAnalytics


def store_tables_of_gt(gt_path: str | Path, out: Path, fps: float, frame_size: Sequence[int],
                       zones: Mapping[str, Sequence[Sequence[float]]] | None = None,
                       lines: Mapping[str, Sequence[Sequence[float]]] | None = None) -> dict[str, pl.DataFrame]:
    """The store node's ``footfall`` and ``dwell`` tables for the ground-truth boxes of ``gt_path``.

    Args:
        gt_path: MOTChallenge ``gt.txt`` (``frame`` 1-based, ``id``, ``x, y, w, h``).
        out: Folder for the node's outputs.
        fps: Frame rate of the clip (MOT frame n is at ``(n - 1) / fps`` s).
        frame_size: ``[width, height]`` of the clip (the zones and lines are drawn on it).
        zones, lines: The geometry to measure in.
    """
    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    w, h = (int(v) for v in frame_size)
    node = StoreAnalytics(str(out), zones=zones, lines=lines, camera=Path(gt_path).parent.name,
                          frame_size=frame_size)
    image = np.zeros((h, w, 3), np.uint8)
    for index in range(int(gt[:, 0].max())):
        rows = gt[gt[:, 0] == index + 1]
        if len(rows):
            xyxy = np.c_[rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]].astype(np.float32)
            det = sv.Detections(xyxy=xyxy, tracker_id=rows[:, 1].astype(int), class_id=np.zeros(len(rows), int),
                                data={"trusted": np.ones(len(rows), bool), "role": np.full(len(rows), "customer")})
        else:
            det = sv.Detections.empty()
        node.process(Frame(video="gt", index=index, timestamp=index / fps, image=image, detections=det))
    node.finish(Frame(video="gt", index=index, timestamp=index / fps, image=image))
    node.close()
    return {name: pl.read_parquet(out / f"{name}.parquet") for name in ("footfall", "dwell")}
