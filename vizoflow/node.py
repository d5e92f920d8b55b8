"""The node protocol: the one verb every graph node speaks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vizoflow.frame import Frame


@runtime_checkable
class Node(Protocol):
    """Anything with ``process(frame) -> frame`` is a node.

    Nodes are built by Hydra from ``_target_``; they need no base class, so a user's
    own class plugs in from YAML. Optional methods the runtime calls when present:

    - ``process_batch(frames) -> frames``: several consecutive frames at once.
    - ``finish(frame) -> frame``: no more frames will come (end of stream, a stop, an
      error); ``frame`` is an empty copy of the last frame. Rules end their open
      events into ``frame.events``, sinks record them.
    - ``end_of_stream()``: after ``finish``, only when the source yielded its last
      frame (never after a stop or an error): the node saw the whole stream.
    - ``close()``: release resources and flush, also after an error or Ctrl-C.
    """

    def process(self, frame: Frame) -> Frame:
        """Return the frame, usually with new detections or events attached."""
        ...
