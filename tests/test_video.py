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


def tagged_copy(src, dst, creation_time: str):
    """Remux ``src`` into ``dst`` with the container tag ``creation_time`` (as cameras write it)."""
    with av.open(str(src)) as inp, av.open(str(dst), mode="w", format="mp4") as out:
        out.metadata["creation_time"] = creation_time
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def test_start_time_from_the_creation_time_tag_survives_a_copy(tmp_path):
    import os
    import shutil

    from vizoflow.video import FROM_TAG

    plain = write_video(tmp_path / "plain.mp4", frames=20, fps=10)
    tagged = tagged_copy(plain, tmp_path / "tagged.mp4", "2024-03-05T08:30:00.000000Z")
    info = probe(tagged)
    assert info.epoch == 1709627400.0 and info.epoch_source == FROM_TAG
    os.utime(tagged, (1e9, 1e9))  # copied or touched: the tag still tells the truth
    shutil.copy(tagged, tmp_path / "copy.mp4")
    assert probe(tmp_path / "copy.mp4").epoch == 1709627400.0


def test_start_time_without_a_tag_is_a_guess_that_says_so(tmp_path):
    import os

    from vizoflow.video import FROM_MTIME

    plain = write_video(tmp_path / "plain.mp4", frames=20, fps=10)
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    info = probe(plain)
    assert info.epoch_source == FROM_MTIME and "no creation_time tag" in info.epoch_note
    assert info.epoch == pytest.approx(1_700_000_000 - info.duration)
    # the mp4 muxer drops a tag it cannot parse; other containers keep free text
    from types import SimpleNamespace

    from vizoflow.video import _creation_epoch
    epoch, source, note = _creation_epoch(SimpleNamespace(metadata={"creation_time": "yesterday"}), plain, 2.0)
    assert (epoch, source) == (1_700_000_000 - 2.0, FROM_MTIME) and note == "unreadable creation_time tag 'yesterday'"


@pytest.mark.parametrize("clip, source", [("intel-one-by-one", "creation_time tag"),
                                          ("ucf-checkout", "modification time (guess)")])
def test_shared_clips_say_where_their_start_time_comes_from(clip, source):
    from tests.conftest import clip as shared_clip

    info = probe(shared_clip(clip))
    assert info.epoch_source == source
    if source == "creation_time tag":
        assert info.epoch == 1506445069.0  # 2017-09-26T16:57:49Z
