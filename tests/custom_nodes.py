"""A user's own node, outside the vizoflow package, plugged in from YAML in tests."""

from __future__ import annotations

from vizoflow.frame import Frame


class PeopleCounter:
    """Counts tracked people per frame; what a user might write in ten lines."""

    def __init__(self, label: str = "people") -> None:
        self.label = label
        self.counts: list[int] = []
        self.closed = False

    def process(self, frame: Frame) -> Frame:
        self.counts.append(len(frame.detections))
        return frame

    def close(self) -> None:
        self.closed = True
