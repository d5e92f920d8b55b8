"""Recorded-video source: files, folders, globs, stride, clock, errors."""

from __future__ import annotations

import pytest

from tests.conftest import write_video
from vizoflow.errors import SourceError
from vizoflow.nodes.sources import VideoFileSource


def test_single_file_gives_every_frame_on_the_video_clock(tmp_path):
    src = VideoFileSource(str(write_video(tmp_path / "a.mp4", frames=6, fps=10)), start_time=1000.0)
    frames = list(src)
    assert src.total_frames == 6
    assert [f.index for f in frames] == list(range(6))
    assert [round(f.timestamp, 3) for f in frames] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert {f.video for f in frames} == {"a"} and {f.epoch for f in frames} == {1000.0}


def test_stride_keeps_original_indices_and_timestamps(tmp_path):
    src = VideoFileSource(str(write_video(tmp_path / "a.mp4", frames=7, fps=10)), stride=3)
    frames = list(src)
    assert src.total_frames == 3
    assert [f.index for f in frames] == [0, 3, 6]
    assert [round(f.timestamp, 3) for f in frames] == [0.0, 0.3, 0.6]


def test_folder_is_processed_in_name_order_and_glob_works(tmp_path):
    write_video(tmp_path / "b.mp4", frames=2)
    write_video(tmp_path / "a.mp4", frames=3)
    (tmp_path / "notes.txt").write_text("not a video")
    frames = list(VideoFileSource(str(tmp_path)))
    assert [(f.video, f.index) for f in frames] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert [f.video for f in VideoFileSource(str(tmp_path / "b*.mp4"))] == ["b", "b"]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(str(tmp_path / "missing.mp4"))
    with pytest.raises(SourceError, match="no video files"):
        VideoFileSource(str(tmp_path))
    with pytest.raises(SourceError, match="stride"):
        VideoFileSource(str(write_video(tmp_path / "a.mp4", frames=2)), stride=0)


def test_truncated_file_fails_with_the_file_name_not_a_hang(tmp_path):
    good = write_video(tmp_path / "a.mp4", frames=30, fps=10, size=(320, 240))
    data = good.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="broken.mp4"):
        list(VideoFileSource(str(broken)))


def test_stopping_early_releases_the_decoder_thread(tmp_path):
    src = VideoFileSource(str(write_video(tmp_path / "a.mp4", frames=40)), prefetch=2)
    for frame in src:
        if frame.index == 3:
            break
    src.close()
    assert src._thread is None
