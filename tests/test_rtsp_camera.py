"""The test camera's streams: whole pictures, as a camera sends them."""

from __future__ import annotations

import re

import av

from tests.conftest import clip
from tests.rtsp_camera import write_annexb

SLICES = (1, 5)  # NAL unit types of coded slices (non-IDR, IDR)


def test_a_re_encoded_stream_has_one_slice_per_picture(tmp_path):
    """The RTSP server sends each slice as a picture of its own: two slices gave half-green frames."""
    stream = write_annexb(clip("ucf-checkout"), tmp_path / "checkout.h264", fps=10)  # 30 fps: re-encoded
    data = stream.read_bytes()
    slices = sum(1 for m in re.finditer(b"\x00\x00\x01", data) if data[m.end()] & 0x1F in SLICES)
    with av.open(str(stream)) as container:
        pictures = sum(1 for _ in container.decode(video=0))
    assert pictures > 100 and slices == pictures
