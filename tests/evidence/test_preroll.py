from collections import deque

import numpy as np

from vizoflow.evidence.preroll import FIRST_BYTES, JpegRing


def frame(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 256, size, dtype=np.uint8)


def test_the_ring_keeps_the_last_seconds_byte_for_byte_through_many_wraps():
    rng = np.random.default_rng(7)
    ring, kept = JpegRing(seconds=4.5), deque()
    for i in range(3000):
        t = i / 10
        size = int(rng.integers(2_000, 60_000)) if i % 500 < 250 else int(rng.integers(20_000, 120_000))
        jpeg = frame(rng, size)
        ring.append(t, jpeg)
        kept.append((t, jpeg))
        while t - kept[0][0] > 4.5:
            kept.popleft()
        if i % 37 == 0:
            got = list(ring.since(kept[0][0]))
            assert [t for t, _ in got] == [t for t, _ in kept]
            assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, kept))
    assert len(ring) == len(kept) == 46
    assert ring.first_since(299.05) == 299.1 and ring.first_since(300) is None


def test_the_buffer_grows_for_a_busy_scene_and_then_stays_its_size():
    rng = np.random.default_rng(3)
    ring = JpegRing(seconds=45)
    sizes = []
    for i in range(6000):  # ten minutes at 10 fps of frames about 40 KB
        ring.append(i / 10, frame(rng, int(rng.integers(30_000, 50_000))))
        sizes.append(ring.nbytes)
    assert FIRST_BYTES < sizes[-1] < 2 * 451 * 50_000  # holds 45 s; at most one growth step over
    assert len(set(sizes[900:])) == 1  # fixed once 90 s of the scene have been seen
    assert len(ring) == 451


def test_a_frame_bigger_than_the_buffer_is_kept_with_the_others():
    ring = JpegRing(seconds=10)
    small, big = np.full(1000, 1, np.uint8), np.full(3 * FIRST_BYTES, 2, np.uint8)
    ring.append(0.0, small)
    ring.append(0.1, big)
    ring.append(0.2, small)
    assert [(t, int(j[0]), j.size) for t, j in ring.since(0)] == [(0.0, 1, 1000), (0.1, 2, big.size), (0.2, 1, 1000)]


def test_clear_forgets_the_frames_and_keeps_the_buffer():
    ring = JpegRing(seconds=10)
    ring.append(0.0, np.ones(5000, np.uint8))
    size = ring.nbytes
    ring.clear()
    assert len(ring) == 0 and list(ring.since(0)) == [] and ring.first_since(0) is None
    ring.append(0.0, np.full(7, 9, np.uint8))
    assert ring.nbytes == size and [j.tolist() for _, j in ring.since(0)] == [[9] * 7]
