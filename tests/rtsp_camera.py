"""A real RTSP camera on 127.0.0.1 for tests and the soak benchmark.

Debian's GStreamer RTSP server (``tests/rtsp_server.py``, run by Debian's
``/usr/bin/python3``, which has ``gi``) loops a raw H.264 stream. It sends about
5 s of frames at once when a client connects, then paces at the given rate.
"""

from __future__ import annotations

import selectors
import socket
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).resolve().parent / "rtsp_server.py"


def free_port() -> int:
    """A TCP port nobody listens on right now (racy: another process may take it before it is used;
    prefer letting the server bind port 0, as :class:`Camera` does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_annexb(video: Path, out: Path, fps: float | None = None) -> Path:
    """The video's H.264 as a raw Annex-B byte stream, which the server can loop.

    The server paces the stream by the frame rate written in the H.264 itself (its VUI
    timing), so a clip of another rate than ``fps`` is re-encoded at ``fps`` (every n-th
    frame kept) with that timing written: a 30 fps clip otherwise arrives at 30 fps
    whatever the server is told, and a stream without timing as fast as it can.
    """
    if fps is not None:
        from vizoflow.video import decode, probe

        source_fps = probe(video).fps
        if abs(source_fps - fps) > 0.5:
            step = max(1, round(source_fps / fps))
            return _encode_annexb((image for i, _, image in decode(video) if i % step == 0), out, fps)
    with av.open(str(video)) as container, open(out, "wb") as fh:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        for packet in container.demux(stream):
            for p in bsf.filter(packet):
                fh.write(bytes(p))
    return out


def _encode_annexb(images, out: Path, fps: float) -> Path:
    """Raw H.264 at a constant ``fps``, with the rate in its VUI (x264 ``force-cfr``)."""
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(out), mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        # one slice per frame: x264's sliced threads cut every frame in one slice per core, and
        # the RTSP server then sends each slice as a frame of its own (half a picture each)
        stream.options = {"crf": "23", "preset": "veryfast", "x264-params": "force-cfr=1:sliced-threads=0"}
        for i, image in enumerate(images):
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


class Camera:
    """Starts and stops the GStreamer RTSP server process serving ``path`` at ``fps``.

    ``port=0`` (the default) lets the server bind a port the kernel picks, so two tests never
    race for one; :attr:`url` names it once started. A port given explicitly that turns out
    to be taken at the first start is replaced the same way (the URL is not handed out yet).
    A restart after :meth:`kill` keeps the port, so clients reconnect to the same URL; it
    retries while the port is briefly unavailable and says so if it stays taken.
    """

    def __init__(self, path: Path, port: int = 0, fps: int = 10, timeout: float = 30.0) -> None:
        self.path, self.port, self.fps, self.timeout, self.proc = path, port, fps, timeout, None
        self._started = False

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the camera has no port before start()")
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def _spawn(self, port: int) -> int | None:
        """Start a server on ``port``; the port bound, or None if it could not listen."""
        proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.path), str(port), str(self.fps)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if sel.select(self.timeout):
                line = proc.stdout.readline()
        if line.startswith("ready "):
            self.proc = proc
            return int(line.split()[1])
        if proc.poll() is None:  # no answer within the timeout: do not leave it running
            proc.kill()
        proc.wait()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        if "cannot listen" in err:
            return None
        raise RuntimeError(f"RTSP server did not start within {self.timeout} s: {err.strip() or line!r}")

    def start(self) -> None:
        """Start serving; returns once the server listens (at most ``timeout`` s per attempt)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("camera already running")
        if not self._started:
            bound = self._spawn(self.port) if self.port else None
            if bound is None:
                bound = self._spawn(0)
            if bound is None:
                raise RuntimeError("RTSP server cannot listen on any port of 127.0.0.1")
        else:
            deadline = time.monotonic() + self.timeout
            while (bound := self._spawn(self.port)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RTSP server cannot listen on 127.0.0.1:{self.port} again (taken)")
                time.sleep(0.2)
        self.port, self._started = bound, True

    def kill(self) -> None:
        """Stop serving at once (an outage)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                pipe.close()
