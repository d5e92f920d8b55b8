"""Annotated preview video: boxes, track ids, roles and zones drawn with supervision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import supervision as sv

from vizoflow.frame import Frame
from vizoflow.video import H264Writer
from vizoflow.zones import Zones


class Annotator:
    """Draw zones (with names) and tracked boxes (with ids and roles) on a copy of an image."""

    def __init__(self, zones: Zones) -> None:
        self.zones = zones
        self._boxes = sv.BoxAnnotator(thickness=2, color_lookup=sv.ColorLookup.TRACK)
        self._labels = sv.LabelAnnotator(text_scale=0.4, text_padding=3, color_lookup=sv.ColorLookup.TRACK)
        self._palette = sv.ColorPalette.DEFAULT

    def draw_zones(self, image: np.ndarray) -> np.ndarray:
        """Draw every zone outline with its name, in place."""
        for i, (name, polygon) in enumerate(self.zones):
            color = self._palette.by_idx(i + 7)
            sv.draw_polygon(image, polygon, color=color, thickness=2)
            x, y = polygon.min(axis=0)
            sv.draw_text(image, name, sv.Point(int(x) + 30, int(y) + 12), text_color=sv.Color.WHITE,
                         text_scale=0.45, text_padding=3, background_color=color)
        return image

    def draw(self, frame: Frame, detections: sv.Detections | None = None) -> np.ndarray:
        """Annotated copy of the frame's image, with its own boxes or the ``detections`` given."""
        image = self.draw_zones(frame.image.copy())
        det = frame.detections if detections is None else detections
        if len(det) == 0:
            return image
        if det.tracker_id is None:  # no tracker in the graph: plain boxes, one colour
            return self._boxes.annotate(image, det, custom_color_lookup=np.zeros(len(det), dtype=int))
        roles, trusted = det.data.get("role"), det.data.get("trusted")
        labels = [f"#{tid}" + (f" {roles[i]}" if roles is not None else "")
                  + (" ?" if trusted is not None and not trusted[i] else "")  # not (yet) trusted to be a person
                  for i, tid in enumerate(det.tracker_id)]
        image = self._boxes.annotate(image, det)
        return self._labels.annotate(image, det, labels=labels)


class PreviewWriter:
    """Write an annotated H.264 preview of the whole run.

    Videos of a folder run follow each other in one file, on one continuous clock,
    scaled to the first video's size. Every frame is written; one the detector skipped
    shows the boxes of the last analysed frame.

    Args:
        path: Output ``.mp4``.
        zones: The camera's zones to draw (:class:`Zones`, or name to polygon), optional.
        fps: Nominal frame rate of the preview.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).
    """

    needs_video = True  # draws on pixels: left out when replaying the track cache
    every_frame = True  # the preview plays at the camera's rate

    def __init__(self, path: str, zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None, fps: float = 25.0,
                 frame_size: Sequence[int] | None = None) -> None:
        self._writer = H264Writer(path, fps=fps)
        self._annotator = Annotator(Zones.of(zones, frame_size))
        self._size: tuple[int, int] | None = None
        self._video: str | None = None
        self._offset = 0.0
        self._last = 0.0
        self._shown = sv.Detections.empty()  # boxes of the last analysed frame

    def process(self, frame: Frame) -> Frame:
        """Draw and encode this frame."""
        self._annotator.zones.check_inside(frame.size)
        if frame.video != self._video:
            if self._video is not None:
                self._offset = self._last + 1.0 / 25
            self._video = frame.video
            self._shown = sv.Detections.empty()
        if frame.analysed:
            self._shown = frame.detections
        image = self._annotator.draw(frame, self._shown)
        self._size = self._size or frame.size
        if frame.size != self._size:
            image = cv2.resize(image, self._size)
        self._last = self._offset + frame.timestamp
        self._writer.write(image, self._last)
        return frame

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()
