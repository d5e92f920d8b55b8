"""A real RTSP camera for tests: Debian's GStreamer RTSP server looping an H.264 file.

Run with Debian's ``/usr/bin/python3`` (which has ``gi``):
``/usr/bin/python3 tests/rtsp_server.py clip.h264 PORT FPS``; serves
``rtsp://127.0.0.1:PORT/cam`` and prints ``ready PORT`` once listening. PORT 0 lets the
kernel pick a free port (no race with other processes); the line names the port bound.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
path, port, fps = sys.argv[1], sys.argv[2], sys.argv[3]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f'( multifilesrc location={path} loop=true caps="video/x-h264,stream-format=byte-stream,'
                   f'framerate={fps}/1" ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print(f"ready {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
