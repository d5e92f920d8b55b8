"""One module per mode of ``python -m vizoflow`` (``mode=run|batch|snapshot|outbox``).

``vizoflow.cli`` parses and dispatches; each mode here does its job through
:mod:`vizoflow.pipeline` where frames are involved. Batch mode is :mod:`vizoflow.batch`.
"""
