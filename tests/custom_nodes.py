"""A user's own node, outside the vizoflow package, plugged in from YAML in tests."""

from __future__ import annotations

import os
import signal

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


class InterruptAfter:
    """Presses Ctrl-C (SIGINT to its own process) once ``frames`` frames went through.

    A user's Ctrl-C during a run, made deterministic: the real signal handler of the
    CLI receives it, so a test follows exactly the path an interrupted run takes.
    It counts every frame, also those the detector skips.
    """

    every_frame = True

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.seen = 0

    def process(self, frame: Frame) -> Frame:
        self.seen += 1
        if self.seen == self.frames:
            os.kill(os.getpid(), signal.SIGINT)
        return frame
