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
