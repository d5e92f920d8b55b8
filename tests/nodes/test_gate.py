"""The detect gate: the detector's rate, motion, keep-alive, lighting changes, masks."""

from __future__ import annotations

import numpy as np
import pytest

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.gate import DetectGate, MotionMeter


def still(i: int, fps: float = 30.0, brightness: int = 90) -> Frame:
    image = np.full((240, 320, 3), brightness, np.uint8)
    image[100:140, 20:60] = 200  # a fixed object: never motion
    return Frame(video="v", index=i, timestamp=i / fps, image=image)


def walker(i: int, fps: float = 30.0) -> Frame:
    frame = still(i, fps)
    x = 80 + 3 * i  # a person-sized block crossing the picture
    frame.image[120:200, x:x + 30] = 10
    return frame


def analysed(gate: DetectGate, frames: list[Frame]) -> list[int]:
    return [f.index for f in frames if gate.process(f).analysed]


def test_rate_is_the_detect_fps_whatever_the_camera_sends():
    gate = DetectGate(fps=5.0, motion=False)
    assert analysed(gate, [still(i) for i in range(60)]) == list(range(0, 60, 6))  # 30 fps camera, 5 looks a second
    every = DetectGate(fps=None, motion=False)
    assert analysed(every, [still(i) for i in range(10)]) == list(range(10))


def test_a_still_scene_is_looked_at_only_by_the_keep_alive():
    gate = DetectGate(fps=5.0, keepalive_seconds=1.0)
    assert analysed(gate, [still(i) for i in range(90)]) == [0, 30, 60]  # 3 s at 30 fps


def test_motion_brings_the_full_detect_rate():
    gate = DetectGate(fps=5.0, keepalive_seconds=1.0)
    looks = analysed(gate, [walker(i) for i in range(60)])
    assert looks == list(range(0, 60, 6))


def test_a_lighting_change_is_no_motion_and_a_new_background():
    gate = DetectGate(fps=10.0, keepalive_seconds=1.0)
    frames = [still(i) for i in range(30)] + [still(i, brightness=160) for i in range(30, 90)]
    looks = analysed(gate, frames)
    assert looks == [0, 30, 60]  # lights on at 1 s: only the keep-alive looks, no storm
    assert gate.status()["lighting_changes"] == 1


def test_motion_in_a_mask_never_counts():
    zones = {"screen": [[60, 100], [320, 100], [320, 240], [60, 240]]}
    gate = DetectGate(fps=5.0, keepalive_seconds=1.0, zones=zones, masks=["screen"])
    assert analysed(gate, [walker(i) for i in range(60)]) == [0, 30]  # the walker stays inside the mask
    with pytest.raises(ConfigError, match="zone 'poster' is not defined"):
        DetectGate(zones=zones, masks=["poster"])


def test_a_new_video_is_looked_at_from_its_first_frame():
    gate = DetectGate(fps=1.0, motion=False)
    first = [still(i) for i in range(5)]
    second = [Frame(video="w", index=i, timestamp=i / 30, image=still(i).image) for i in range(3)]
    assert analysed(gate, first) == [0]
    assert analysed(gate, second) == [0]


@pytest.mark.parametrize("kwargs, word", [({"fps": -1}, "detect.fps"), ({"keepalive_seconds": 0}, "keepalive"),
                                          ({"motion_area": 2}, "motion_area"), ({"motion_width": 4}, "motion_width")])
def test_bad_settings_are_named(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        DetectGate(**kwargs)


def test_the_meter_measures_the_share_that_moved():
    meter = MotionMeter(width=160)
    base = np.full((240, 320, 3), 90, np.uint8)
    assert meter.measure(base, 0.0) == 1.0  # the first frame becomes the background
    moved = base.copy()
    moved[:60, :80] = 250  # a sixteenth of the picture
    assert meter.measure(moved, 0.1) == pytest.approx(1 / 16, abs=0.01)
    assert meter.measure(base, 0.2) < 0.07


def test_the_rate_holds_on_average_where_it_does_not_divide_the_cameras():
    gate = DetectGate(fps=5.0, motion=False)
    looks = analysed(gate, [still(i, fps=7.5) for i in range(75)])  # 10 s of a 7.5 fps recorder
    assert len(looks) == 50  # 5 a second, not every other frame (3.75 a second)
    assert max(b - a for a, b in zip(looks, looks[1:])) == 2
