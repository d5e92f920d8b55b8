"""NearestCosineMetric gives deep-sort-realtime's own distances, over many looks."""

import numpy as np
import pytest

from vizoflow.nodes.cosine import NearestCosineMetric


def _library(threshold, budget):
    from deep_sort_realtime.deep_sort.nn_matching import NearestNeighborDistanceMetric

    return NearestNeighborDistanceMetric("cosine", threshold, budget)


@pytest.mark.parametrize("budget", [5, None])
def test_distances_match_the_library_over_many_looks(budget):
    rng = np.random.default_rng(0)
    ours, theirs = NearestCosineMetric(0.2, budget), _library(0.2, budget)
    tracks = [str(i) for i in range(1, 9)]
    for look in range(40):  # every track gets up to 3 features a look: the ring wraps many times
        active = [t for t in tracks if rng.random() > 0.2 or look < 2]
        targets = [t for t in active for _ in range(rng.integers(1, 4))]
        features = rng.normal(size=(len(targets), 1280)).astype(np.float32) * rng.uniform(0.5, 3)
        for metric in (ours, theirs):
            metric.partial_fit(features, np.asarray(targets), active)
        detections = rng.normal(size=(6, 1280)).astype(np.float32)
        detections[:2] = features[:2] * 1.7  # two detections look exactly like stored features
        asked = np.asarray(active)
        np.testing.assert_allclose(ours.distance(detections, asked), theirs.distance(detections, asked),
                                   rtol=0, atol=1e-6)
    assert ours.matching_threshold == theirs.matching_threshold


def test_inactive_tracks_are_forgotten_and_no_features_cost_nothing():
    metric = NearestCosineMetric(0.2, 3)
    metric.partial_fit(np.ones((2, 4), np.float32), np.asarray(["1", "2"]), ["1", "2"])
    metric.partial_fit(np.zeros((0, 4), np.float32), np.asarray([]), ["2"])
    with pytest.raises(KeyError):
        metric.distance(np.ones((1, 4), np.float32), np.asarray(["1"]))
    assert metric.distance(np.ones((1, 4), np.float32), np.asarray(["2"]))[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert metric.distance(np.zeros((0, 4), np.float32), np.asarray(["2"])).shape == (1, 0)
