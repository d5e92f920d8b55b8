"""Runtime: order, batching, timing, and closing every node whatever happens."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

from vizoflow.errors import NodeError
from vizoflow.frame import Frame
from vizoflow.runtime import PerCamera, Runtime


def frames(n: int) -> list[Frame]:
    return [Frame(video="v", index=i, timestamp=i / 10, image=np.zeros((4, 4, 3), np.uint8)) for i in range(n)]


class ListSource:
    def __init__(self, items):
        self.items = items
        self.closed = False
        self.total_frames = len(items)

    def __iter__(self):
        return iter(self.items)

    def close(self):
        self.closed = True


class Recorder:
    def __init__(self, log, name, fail_at=None, interrupt_at=None):
        self.log, self.name, self.fail_at, self.interrupt_at = log, name, fail_at, interrupt_at
        self.closed = False

    def process(self, frame):
        if frame.index == self.fail_at:
            raise ValueError("boom")
        if frame.index == self.interrupt_at:
            raise KeyboardInterrupt
        self.log.append((self.name, frame.index))
        return frame

    def close(self):
        self.closed = True


class Batcher:
    def __init__(self):
        self.sizes = []

    def process_batch(self, batch):
        self.sizes.append(len(batch))
        return batch


def test_frames_pass_through_nodes_in_order_and_everything_is_closed():
    log = []
    a, b = Recorder(log, "a"), Recorder(log, "b")
    source = ListSource(frames(3))
    stats = Runtime(source, [("a", a), ("b", b)], progress=False).run()
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert stats.status == "ok" and stats.frames == 3
    assert a.closed and b.closed and source.closed
    assert set(stats.node_table()) == {"a", "b"}


def test_batching_nodes_get_batches_and_the_rest_one_by_one():
    log = []
    batcher = Batcher()
    Runtime(ListSource(frames(10)), [("det", batcher), ("rec", Recorder(log, "r"))], batch_size=4, progress=False).run()
    assert batcher.sizes == [4, 4, 2]
    assert [i for _, i in log] == list(range(10))


def test_node_error_names_node_and_frame_and_still_closes_all():
    log = []
    a, b = Recorder(log, "a"), Recorder(log, "b", fail_at=2)
    source = ListSource(frames(5))
    runtime = Runtime(source, [("a", a), ("bad", b)], progress=False)
    with pytest.raises(NodeError, match="node 'bad' failed on frame 2: ValueError: boom"):
        runtime.run()
    assert a.closed and b.closed and source.closed
    assert runtime.stats.status == "failed"


def test_ctrl_c_closes_every_node():
    a = Recorder([], "a", interrupt_at=1)
    runtime = Runtime(ListSource(frames(5)), [("a", a)], progress=False)
    with pytest.raises(KeyboardInterrupt):
        runtime.run()
    assert a.closed and runtime.stats.status == "interrupted"


def test_stop_finishes_the_current_batch_then_ends():
    log = []

    class Stopper(Recorder):
        def process(self, frame):
            if frame.index == 1:
                runtime.stop()
            return super().process(frame)

    runtime = Runtime(ListSource(frames(10)), [("s", Stopper(log, "s"))], progress=False)
    stats = runtime.run()
    assert stats.status == "stopped" and stats.frames == 2


class Ending(Recorder):
    """Logs which end-of-run hooks the runtime calls."""

    def finish(self, frame):
        self.log.append(("finish", frame.index))
        return frame

    def end_of_stream(self):
        self.log.append(("end_of_stream", None))


def run_ending(n: int, stop_at=None, fail_at=None, interrupt_at=None) -> tuple[str, list[str]]:
    """Run ``n`` frames through one :class:`Ending` node; the status and the end-of-run hooks called."""
    log = []

    class Node(Ending):
        def process(self, frame):
            if frame.index == stop_at:
                runtime.stop()
            return super().process(frame)

    runtime = Runtime(ListSource(frames(n)), [("n", Node(log, "n", fail_at, interrupt_at))], progress=False)
    with contextlib.suppress(NodeError, KeyboardInterrupt):
        runtime.run()
    return runtime.stats.status, [name for name, _ in log if name in ("finish", "end_of_stream")]


def test_finish_always_runs_but_only_the_end_of_the_source_is_the_end_of_the_stream():
    """Open events end on a stop, an error or Ctrl-C too (``finish``), but only a source that ran
    out may be taken for a whole video (``end_of_stream``)."""
    assert run_ending(3) == ("ok", ["finish", "end_of_stream"])
    assert run_ending(10, stop_at=1) == ("stopped", ["finish"])
    assert run_ending(10, fail_at=2) == ("failed", ["finish"])
    assert run_ending(10, interrupt_at=2) == ("interrupted", ["finish"])


def test_rejects_non_positive_batch():
    with pytest.raises(ValueError, match="batch_size"):
        Runtime(ListSource([]), [], batch_size=0)


class BadClose(Recorder):
    def close(self):
        self.closed = True
        raise OSError("disk gone")


def test_a_node_that_fails_to_close_does_not_keep_the_others_open():
    log = []
    a, b, c = BadClose(log, "a"), BadClose(log, "b"), Recorder(log, "c")
    source = ListSource(frames(2))
    with pytest.raises(NodeError, match="'a'"):
        Runtime(source, [("a", a), ("b", b), ("c", c)], progress=False).run()
    assert a.closed and b.closed and c.closed and source.closed


class Numbers:
    def __init__(self, **values):
        self.values = values

    def status(self):
        if isinstance(self.values, Exception):
            raise self.values
        return self.values


def test_a_per_camera_entry_reports_its_instances_numbers_as_one():
    """Counts are summed, a flag is 1 if any camera has it (not the number of cameras), see combine_status."""
    node = PerCamera({"a": Numbers(open_events=2, disk_low=1.0), "b": Numbers(open_events=1, disk_low=1.0),
                      "c": object()})
    assert node.status() == {"open_events": 3.0, "disk_low": 1.0}
    node.instances["b"].values = OSError("statvfs failed")
    with pytest.raises(OSError):  # the board names the entry as failed; its numbers are not partly summed
        node.status()


class Skipper:
    """A gate: every third frame is analysed."""

    every_frame = True

    def process(self, frame):
        frame.analysed = frame.index % 3 == 0
        return frame


class Seen:
    def __init__(self, every_frame=False):
        self.every_frame = every_frame
        self.seen = []

    def process(self, frame):
        self.seen.append(frame.index)
        return frame


def test_skipped_frames_reach_only_nodes_that_need_every_frame():
    rules, clips = Seen(), Seen(every_frame=True)
    out = []
    Runtime(ListSource(frames(10)), [("gate", Skipper()), ("rules", rules), ("clips", clips)], batch_size=4,
            progress=False, on_batch=lambda b: out.extend(f.index for f in b)).run()
    assert rules.seen == [0, 3, 6, 9]
    assert clips.seen == list(range(10))  # in order, skipped frames included
    assert out == list(range(10))


class OnThread(Seen):
    """Records the thread it ran on; flags when it is handed ``signal_at``."""

    def __init__(self, signal_at=None, every_frame=False):
        super().__init__(every_frame)
        self.signal_at, self.signal, self.threads = signal_at, threading.Event(), set()

    def process(self, frame):
        self.threads.add(threading.current_thread().name)
        if frame.index == self.signal_at:
            self.signal.set()
        return super().process(frame)


class WaitsFor(Seen):
    """On frame 0, waits (bounded) for another node's signal: proof the two ran at the same time."""

    def __init__(self, other):
        super().__init__()
        self.other, self.overlapped = other, None

    def process(self, frame):
        if frame.index == 0:
            self.overlapped = self.other.signal.wait(5)
        return super().process(frame)


def test_nodes_ahead_work_on_the_next_batch_on_their_own_thread():
    front = OnThread(signal_at=1)
    back, out = WaitsFor(front), []
    stats = Runtime(ListSource(frames(6)), [("detect", front), ("track", back)], ahead=1, progress=False,
                    on_batch=lambda b: out.extend(f.index for f in b)).run()
    assert back.overlapped  # the detector had frame 1 while the tracker still had frame 0
    assert front.seen == back.seen == out == list(range(6))
    assert front.threads == {"vizoflow-ahead_0"} and threading.current_thread().name not in front.threads
    assert stats.status == "ok" and stats.frames == 6


def test_nodes_ahead_give_the_same_frames_as_one_thread():
    def run(ahead):
        rules, clips, out = Seen(), Seen(every_frame=True), []
        Runtime(ListSource(frames(10)), [("gate", Skipper()), ("detect", Batcher()), ("rules", rules),
                                         ("clips", clips)], batch_size=4, progress=False, ahead=ahead,
                on_batch=lambda b: out.extend(f.index for f in b)).run()
        return rules.seen, clips.seen, out

    assert run(2) == run(0) == ([0, 3, 6, 9], list(range(10)), list(range(10)))


class Busy(Recorder):
    """Takes a while per frame; notes whether it was closed while still at work."""

    def __init__(self, log, name):
        super().__init__(log, name)
        self.busy = self.closed_busy = False

    def process(self, frame):
        self.busy = True
        time.sleep(0.05)
        self.busy = False
        return super().process(frame)

    def close(self):
        self.closed_busy = self.busy
        super().close()


def test_a_stop_or_an_error_waits_for_the_batch_ahead_before_closing():
    log = []
    front, back = Busy(log, "detect"), Recorder(log, "track", fail_at=2)
    source = ListSource(frames(8))
    with pytest.raises(NodeError, match="track"):
        Runtime(source, [("detect", front), ("track", back)], ahead=1, progress=False).run()
    assert front.closed and not front.closed_busy and back.closed and source.closed

    front = Busy([], "detect")
    runtime = Runtime(ListSource(frames(8)), [("detect", front)], ahead=1, progress=False)
    runtime.on_batch = lambda batch: runtime.stop()
    stats = runtime.run()
    assert stats.status == "stopped" and stats.frames == 1 and front.closed and not front.closed_busy


def test_an_error_ahead_names_its_node_and_closes_everything():
    log = []
    front, back = Recorder(log, "detect", fail_at=3), Recorder(log, "track")
    source = ListSource(frames(6))
    with pytest.raises(NodeError, match="detect"):
        Runtime(source, [("detect", front), ("track", back)], ahead=1, progress=False).run()
    assert [i for name, i in log if name == "track"] == [0, 1, 2]
    assert front.closed and back.closed and source.closed


def test_ahead_must_fit_the_nodes():
    with pytest.raises(ValueError, match="ahead"):
        Runtime(ListSource([]), [("a", Seen())], ahead=2)
