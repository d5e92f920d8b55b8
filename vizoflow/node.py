"""The node protocol: the one verb every graph node speaks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vizoflow.frame import Frame


@runtime_checkable
class Node(Protocol):
    """Anything with ``process(frame) -> frame`` is a node.

    Nodes are built by Hydra from ``_target_``; they need no base class, so a user's
    own class plugs in from YAML. ``close`` is optional: the runtime calls it when
    present, at the end of the run, also after an error or Ctrl-C, so sinks can
    flush.
    """

    def process(self, frame: Frame) -> Frame:
        """Return the frame, usually with new detections or events attached."""
        ...
