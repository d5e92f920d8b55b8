"""The detector's input, letterboxed into one reused tensor.

Ultralytics prepares each frame in four new arrays: the letterboxed frame, its
channels-first copy, the RGB flip and the float copy, about 9 MB for one 640x640
input. Blocks that big get pages of their own (``runtime.mmap_threshold_kb``), so
every look of the detector mapped and unmapped them: 2,300 of the 3,000 page faults
a look took (``docs/scale.md``). Here the same numbers are written into one float
tensor per batch size, kept for the next look.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from ultralytics.data.augment import LetterBox

PAD = 114  # Ultralytics' letterbox grey
MAX_SHAPES = 16  # frame sizes whose resized buffer is kept (a site's cameras have a few)


class LetterboxInput:
    """Turn BGR frames into the detector's ``(n, 3, size, size)`` float input, as Ultralytics would.

    Bit for bit the input of Ultralytics' ``LetterBox`` (centred, scaled up or down,
    linear interpolation, grey padding) followed by its ``preprocess`` (RGB, channels
    first, divided by 255), for a model with a fixed square input in f32. Any other
    model keeps Ultralytics' own steps (see :class:`~vizoflow.nodes.detect.YoloDetector`).

    Args:
        size: The model's input side in pixels.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._geometry = LetterBox((size, size), auto=False)  # where Ultralytics puts a frame: its own arithmetic
        self._batches: dict[int, torch.Tensor] = {}  # one input per batch size
        self._resized: dict[tuple[int, int], np.ndarray] = {}  # one resized frame per frame shape

    def __call__(self, images: list[np.ndarray]) -> torch.Tensor:
        """The input for ``images`` (BGR, uint8, H x W x 3); valid until the next call."""
        batch = self._batches.get(len(images))
        if batch is None:
            batch = self._batches[len(images)] = torch.empty((len(images), 3, self.size, self.size))
        batch.fill_(PAD)
        for i, image in enumerate(images):
            top, left, resized = self._resize(image)
            h, w = resized.shape[:2]
            pixels = torch.from_numpy(resized)
            for channel in range(3):  # BGR to RGB; the copy converts to float
                batch[i, channel, top:top + h, left:left + w].copy_(pixels[..., 2 - channel])
        return batch.div_(255)

    def _resize(self, image: np.ndarray) -> tuple[int, int, np.ndarray]:
        """``(top, left, resized frame)``: where and at what size the frame sits, as ``LetterBox`` puts it."""
        height, width = image.shape[:2]
        params = self._geometry.get_params({"img": image})
        (new_w, new_h), top, left = params["new_unpad"], params["top"], params["left"]
        if (new_w, new_h) == (width, height):
            return top, left, image
        resized = self._resized.get((height, width))
        if resized is None:
            if len(self._resized) >= MAX_SHAPES:  # sizes keep changing: keep the newest only
                self._resized.clear()
            resized = self._resized[(height, width)] = np.empty((new_h, new_w, 3), np.uint8)
        cv2.resize(image, (new_w, new_h), dst=resized, interpolation=cv2.INTER_LINEAR)
        return top, left, resized
