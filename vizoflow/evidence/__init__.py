"""Video evidence, one service: clips around events, the outbox, delivery, linking, retention.

:class:`Evidence` owns the evidence folder and its ``outbox.sqlite``; the graph's clip
node hands it frames and events, the analytics sink links what it delivered. Modules:
``clips`` (cutting), ``recorder`` (recording clips in the outbox), ``outbox`` (the
SQLite store), ``delivery`` (HTTP upload and incident report), ``courier`` (moving
items through delivery), ``linker`` (evidence into the analytics files),
``retention`` (deleting delivered clips), ``disk`` (free space).
"""

from vizoflow.evidence.service import Evidence

__all__ = ["Evidence"]
