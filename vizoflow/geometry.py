"""Where people stand: ground points and an optional image-to-floor homography."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from vizoflow.errors import ConfigError


def ground_points(xyxy: np.ndarray) -> np.ndarray:
    """Bottom-centre of each box: the point a person stands on, ``(N, 2)`` float."""
    return np.stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3]], axis=1) if len(xyxy) else np.zeros((0, 2))


class FloorMap:
    """Maps image points to floor coordinates so distances can be given in metres.

    Without calibration it is the identity, and distances are in pixels.

    Args:
        calibration: ``{"image": [[x, y] * 4], "floor": [[X, Y] * 4]}``, four image
            points and where they lie on the floor (metres), or None.

    Raises:
        ConfigError: calibration does not have four point pairs, or they are degenerate.
    """

    def __init__(self, calibration: Mapping[str, Sequence[Sequence[float]]] | None = None) -> None:
        self.matrix: np.ndarray | None = None
        if not calibration:
            return
        try:
            image = np.asarray(calibration["image"], dtype=np.float32)
            floor = np.asarray(calibration["floor"], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise ConfigError("calibration needs 'image' and 'floor', each four [x, y] points") from None
        if image.shape != (4, 2) or floor.shape != (4, 2):
            raise ConfigError(f"calibration needs four [x, y] points each, got image {image.tolist()} floor {floor.tolist()}")
        matrix = cv2.getPerspectiveTransform(image, floor)
        if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
            raise ConfigError("calibration points are degenerate (three of them on a line?)")
        self.matrix = matrix

    @property
    def unit(self) -> str:
        """``m`` when calibrated, else ``px``."""
        return "px" if self.matrix is None else "m"

    def to_floor(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` image points to the floor (identity when uncalibrated)."""
        if self.matrix is None or len(points) == 0:
            return np.asarray(points, dtype=float)
        return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), self.matrix).reshape(-1, 2)


DISTANCE_UNITS = ("height", "px")


def distances(a: np.ndarray, b: np.ndarray, floor: FloorMap, unit: str = "px") -> np.ndarray:
    """``(len(a), len(b))`` distances between the ground points of two sets of boxes (``xyxy``).

    With a floor calibration, metres. Otherwise in ``unit``: ``px``, or ``height``, pixels
    divided by the taller box of each pair. A person's height is the one ruler every
    camera carries: "within 1.5 heights" means the same at 320x240 and 1280x720, high up or
    low, so a default can serve a store that was never seen. The taller of the two, because
    a counter cuts the box of whoever stands behind it.
    """
    pa, pb = floor.to_floor(ground_points(a)), floor.to_floor(ground_points(b))
    d = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)
    if floor.matrix is not None or unit == "px":
        return d
    ha, hb = a[:, 3] - a[:, 1], b[:, 3] - b[:, 1]
    return d / np.maximum(np.maximum(ha[:, None], hb[None, :]), 1.0)

