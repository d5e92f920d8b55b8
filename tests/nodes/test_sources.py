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


def test_start_time_source_is_recorded_and_a_guess_warned_once_per_video(tmp_path, caplog):
    import logging

    from tests.test_video import tagged_copy

    (tmp_path / "in").mkdir()
    plain = write_video(tmp_path / "in" / "b_plain.mp4", frames=3, fps=10)
    write_video(tmp_path / "in" / "c_plain.mp4", frames=3, fps=10)
    tagged_copy(plain, tmp_path / "in" / "a_tagged.mp4", "2024-03-05T08:30:00Z")
    with caplog.at_level(logging.WARNING, logger="vizoflow.nodes.sources"):
        src = VideoFileSource(str(tmp_path / "in"))
        frames = list(src)
    assert src.start_time_sources == {"a_tagged": "creation_time tag", "b_plain": "modification time (guess)",
                                      "c_plain": "modification time (guess)"}
    assert src.start_time_source == src.start_time_sources  # they differ: per video
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and "b_plain.mp4" in warned[0] and "c_plain.mp4" in warned[1]
    assert all("modification time" in w and "source.start_time" in w for w in warned)
    assert {f.epoch for f in frames if f.video == "a_tagged"} == {1709627400.0}

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vizoflow.nodes.sources"):
        given = VideoFileSource(str(tmp_path / "in"), start_time="1000")
    assert given.start_time_source == "source.start_time" and not caplog.records  # told, so no guess
    assert VideoFileSource(str(tmp_path / "in" / "a_tagged.mp4")).start_time_source == "creation_time tag"
    with pytest.raises(SourceError, match="start_time"):
        VideoFileSource(str(plain), start_time="yesterday")
