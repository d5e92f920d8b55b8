"""Where people stood: seconds per grid cell of the image, and a picture of it beside the frame."""

from __future__ import annotations

import cv2
import numpy as np


class Heatmap:
    """Seconds of presence per ``cell`` x ``cell`` pixel square of a ``(width, height)`` image.

    Each frame adds, for every ground point, the time since the previous frame (at most
    ``max_step``, so a stalled stream adds at most that), so the grid reads as person-seconds
    whatever the frame rate.
    """

    def __init__(self, size: tuple[int, int], cell: int = 8, max_step: float = 1.0) -> None:
        self.size, self.cell, self.max_step = (int(size[0]), int(size[1])), int(cell), max_step
        self.grid = np.zeros((-(-self.size[1] // self.cell), -(-self.size[0] // self.cell)))
        self._last: float | None = None

    def add(self, t: float, points: np.ndarray) -> None:
        """Count the ground points of the frame at clock time ``t``."""
        step = 0.0 if self._last is None else min(max(t - self._last, 0.0), self.max_step)
        self._last = t
        if step == 0.0 or len(points) == 0:
            return
        cols = np.clip((np.asarray(points)[:, 0] // self.cell).astype(int), 0, self.grid.shape[1] - 1)
        rows = np.clip((np.asarray(points)[:, 1] // self.cell).astype(int), 0, self.grid.shape[0] - 1)
        np.add.at(self.grid, (rows, cols), step)


def render(grid: np.ndarray, image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """The frame (grey when unknown) and, beside it, the heat (square root scale) over a dimmed copy."""
    w, h = size
    frame = image if image is not None and image.shape[:2] == (h, w) else np.full((h, w, 3), 96, np.uint8)
    peak = float(grid.max())
    scaled = np.sqrt(grid / peak) if peak > 0 else grid
    heat = cv2.resize((255 * scaled).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    colour = cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    mask = (heat > 0)[..., None]
    overlay = np.where(mask, cv2.addWeighted(frame, 0.35, colour, 0.65, 0), (frame * 0.35).astype(np.uint8))
    return np.hstack([frame, overlay])
