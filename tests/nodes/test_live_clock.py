"""Live timestamps, stall verdicts and the pre-roll buffer do not follow wall-clock steps (NTP).

No camera is needed: frames are handed to :class:`LiveSource` as its reader thread
would, on a fake clock whose wall time can be stepped. The module's ``time`` is
replaced too, so code that still read ``time.time()`` would see the steps.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

import vizoflow.nodes.live as live
from vizoflow.evidence.clips import ClipCutter, ClipSettings
from vizoflow.evidence.disk import DiskGuard
from vizoflow.evidence.recorder import ClipRecorder
from vizoflow.nodes.live import LiveSource
from vizoflow.nodes.rules import EpisodeTracker, Observation
from vizoflow.status import StatusBoard

FPS = 10
WALL0 = 1_750_000_000.0  # wall time when the camera starts


class Clocks:
    """A monotonic clock in ticks of 1/FPS, and a wall clock that can be stepped."""

    def __init__(self) -> None:
        self.tick, self.step = 0, 0.0

    def monotonic(self) -> float:
        return 5000.0 + self.tick / FPS

    def wall(self) -> float:
        return WALL0 + self.tick / FPS + self.step


def run_camera(step: float, monkeypatch, tmp_path) -> dict:
    """60 s at 10 fps; the wall clock jumps by ``step`` at 30 s and again at 46 s (in an outage 40-52 s)."""
    clocks = Clocks()
    monkeypatch.setattr(live, "time", SimpleNamespace(time=clocks.wall, monotonic=clocks.monotonic))
    source = LiveSource("rtsp://cam/stream", name="cam", buffer=10_000)
    board = StatusBoard(source, [], stall_seconds=10, refresh=0, clock=clocks.monotonic)
    image = np.zeros((16, 16, 3), np.uint8)
    rule = EpisodeTracker("interaction", min_seconds=3, gap_seconds=2)  # the same pair together all along
    together = {(1, 2): Observation(ids=(1, 2), boxes=(), confidence=0.9)}
    frames, verdicts, events = [], [], []
    for tick in range(60 * FPS):
        clocks.tick = tick
        if tick in (30 * FPS, 46 * FPS):
            clocks.step += step
        healthy, problems = board.health()  # read between frames, as /health is
        verdicts.append((healthy, problems[0].split(":")[0] if problems else ""))
        if not 40 * FPS <= tick < 52 * FPS:  # the camera sends nothing from 40 s to 52 s
            source._hand_over(image)
            frame = source._frames.get_nowait()
            board.on_batch([frame])
            frames.append(frame)
            events += [(e.phase, round(e.started_at, 3), round(e.duration, 3)) for e in rule.step(frame, together)]
    clips = tmp_path / f"segments{step:+.0f}"
    clips.mkdir()
    segmenter = ClipCutter(clips, ClipSettings(buffer_seconds=5, pre_roll=2, fps=FPS), ClipRecorder(None, clips),
                           DiskGuard(clips, 0))
    try:
        for frame in frames:
            segmenter.process(frame)
    finally:
        segmenter.close()
    return {"timestamps": [f.timestamp for f in frames], "real": [f.epoch + f.timestamp for f in frames],
            "verdicts": verdicts, "ring": len(segmenter._ring), "events": events}


@pytest.mark.parametrize("step", [-3600.0, 3600.0])
def test_a_wall_clock_step_changes_no_timestamp_stall_verdict_or_buffer(step, monkeypatch, tmp_path, caplog):
    steady = run_camera(0.0, monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING, logger="vizoflow.nodes.live"):
        stepped = run_camera(step, monkeypatch, tmp_path)

    # a step of the wall clock changes none of it
    assert stepped["timestamps"] == steady["timestamps"]  # durations, rules, clips: all subtract these
    assert stepped["real"] == steady["real"]  # names: anchored once at the start
    assert stepped["events"] == steady["events"]  # no negative duration, no event ended (or kept open) by a step
    assert stepped["verdicts"] == steady["verdicts"]  # no fake "camera stalled", no hidden stall
    assert stepped["ring"] == steady["ring"]  # the pre-roll buffer stays bounded
    assert "off the time base anchored at the start" in caplog.text  # but the step is told

    # the steady run is right in itself: 10 fps from 0 s, real times from the start's wall time,
    # healthy except while the camera is silent for over 10 s (last frame 39.9 s, next 52.0 s),
    # the pre-roll buffer 5 s long
    assert steady["timestamps"][:3] == pytest.approx([0.0, 0.1, 0.2])
    assert steady["real"][0] == pytest.approx(WALL0)
    stalled = [tick / FPS for tick, (_, what) in enumerate(steady["verdicts"]) if what]
    assert stalled and min(stalled) == pytest.approx(50.0) and max(stalled) == pytest.approx(52.0)
    assert {what for _, what in steady["verdicts"]} == {"", "camera stalled"}
    assert steady["ring"] <= 5 * FPS + 1
    # together from 0 s: starts after 3 s, ends in the outage (last seen 39.9 s), a new one from 52 s
    assert steady["events"] == [("start", 0.0, 3.0), ("end", 0.0, 39.9), ("start", 52.0, 3.0)]


def test_clocks_are_injectable_and_the_wall_clock_is_read_once_for_the_epoch():
    clocks = Clocks()
    source = LiveSource("rtsp://cam/stream", buffer=10, monotonic=clocks.monotonic, wall=clocks.wall)
    clocks.tick, clocks.step = 25, -7200.0
    source._hand_over(np.zeros((4, 4, 3), np.uint8))
    frame = source._frames.get_nowait()
    assert frame.timestamp == pytest.approx(2.5) and frame.epoch == WALL0
    clocks.tick += 30
    assert source.status()["seconds_since_frame"] == pytest.approx(3.0)


def test_how_long_frames_waited_for_the_loop_is_counted_on_the_source_clock():
    clocks = Clocks()
    source = LiveSource("rtsp://cam/stream", buffer=4, monotonic=clocks.monotonic, wall=clocks.wall)
    source._read = lambda: None  # no camera: frames are handed over below, as the reader would
    frames = iter(source)
    for tick in (10, 11):  # two frames, 1.0 s and 1.1 s after the start
        clocks.tick = tick
        source._hand_over(np.zeros((4, 4, 3), np.uint8))
    clocks.tick, clocks.step = 14, 600.0  # the loop takes them 0.4 s and 0.3 s later; a wall step changes nothing
    assert [next(frames).index for _ in range(2)] == [0, 1]
    source.close()
    assert source.status()["frame_wait_seconds"] == pytest.approx(0.7)
