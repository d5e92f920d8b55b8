"""PyAV adapters: H.264 writing with real timestamps, probing, decoding errors."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.conftest import write_video
from vizoflow.errors import SourceError
from vizoflow.video import H264Writer, decode, probe


def test_written_clip_is_h264_yuv420p_with_the_asked_timestamps(tmp_path):
    path = write_video(tmp_path / "c.mp4", frames=20, fps=10)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        times = [f.time for f in c.decode(stream)]
    assert len(times) == 20
    assert times[-1] - times[0] == pytest.approx(1.9, abs=1e-3)
    info = probe(path)
    assert (info.width, info.height, info.frames) == (64, 48, 20)


def test_decode_yields_frames_in_order_with_clock_from_zero(tmp_path):
    path = write_video(tmp_path / "c.mp4", frames=5, fps=10)
    got = list(decode(path))
    assert [i for i, _, _ in got] == [0, 1, 2, 3, 4]
    assert [round(t, 3) for _, t, _ in got] == [0.0, 0.1, 0.2, 0.3, 0.4]
    levels = [img.mean() for _, _, img in got]
    assert levels[0] == pytest.approx(64, abs=5)  # BGR->YUV->BGR range conversion shifts a little
    assert all(2.5 < step < 5.5 for step in np.diff(levels))  # each frame is the next one written


def test_writer_publishes_only_on_close(tmp_path):
    writer = H264Writer(tmp_path / "x.mp4", fps=10)
    writer.write(np.zeros((48, 64, 3), np.uint8), 0.0)
    assert not (tmp_path / "x.mp4").exists()
    assert writer.close() == tmp_path / "x.mp4"
    assert (tmp_path / "x.mp4").exists() and not (tmp_path / "x.mp4.partial").exists()


def test_probe_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        probe(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(SourceError, match="bad.mp4"):
        probe(bad)
