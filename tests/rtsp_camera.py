"""A real RTSP camera on 127.0.0.1 for tests and the soak benchmark.

Debian's GStreamer RTSP server (``tests/rtsp_server.py``, run by Debian's
``/usr/bin/python3``, which has ``gi``) loops a raw H.264 stream. It sends about
5 s of frames at once when a client connects, then paces at the given rate.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import av

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).resolve().parent / "rtsp_server.py"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_annexb(video: Path, out: Path) -> Path:
    """The video's H.264 as a raw Annex-B byte stream, which the server can loop."""
    with av.open(str(video)) as container, open(out, "wb") as fh:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        for packet in container.demux(stream):
            for p in bsf.filter(packet):
                fh.write(bytes(p))
    return out


class Camera:
    """Starts and stops the GStreamer RTSP server process serving ``path`` at ``fps``."""

    def __init__(self, path: Path, port: int, fps: int = 10) -> None:
        self.path, self.port, self.fps, self.proc = path, port, fps, None
        self.url = f"rtsp://127.0.0.1:{port}/cam"

    def start(self) -> None:
        """Start serving; returns once the server listens."""
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.path), str(self.port), str(self.fps)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"RTSP server did not start: {self.proc.stderr.read()}")

    def kill(self) -> None:
        """Stop serving at once (an outage)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
