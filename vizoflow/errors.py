"""The exception hierarchy users see.

Every error vizoflow raises on purpose derives from :class:`VizoflowError`, so the
CLI can print one line naming the problem instead of a traceback.
"""

from __future__ import annotations


class VizoflowError(Exception):
    """Base class: a problem vizoflow can explain in one line."""


class ConfigError(VizoflowError):
    """A configuration value is missing, malformed or names nothing."""


class GraphError(ConfigError):
    """The node graph is malformed: unknown input, cycle, missing ``_target_``."""

    def __init__(self, node: str, problem: str) -> None:
        super().__init__(f"graph node '{node}': {problem}")
        self.node = node


class SourceError(VizoflowError):
    """A video source cannot be opened or decoded."""


class NodeError(VizoflowError):
    """A node failed while processing a frame.

    Wraps the original exception so the message says which node and which frame.
    """

    def __init__(self, node: str, frame_index: int, cause: BaseException) -> None:
        super().__init__(f"node '{node}' failed on frame {frame_index}: {type(cause).__name__}: {cause}")
        self.node = node
        self.frame_index = frame_index


class UploadError(VizoflowError):
    """Evidence could not be delivered (upload or incident report)."""
