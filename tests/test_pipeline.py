"""The pipeline's choices from the config that are not a node's own."""

from omegaconf import OmegaConf

from vizoflow.pipeline import detect_ahead


def test_the_nodes_up_to_the_detector_run_ahead_when_the_config_says_so():
    nodes = [("gate", object()), ("detect", object()), ("track", object()), ("rules", object())]
    assert detect_ahead(OmegaConf.create({"runtime": {"detect_ahead": True}}), nodes) == 2
    assert detect_ahead(OmegaConf.create({"runtime": {"detect_ahead": False}}), nodes) == 0
    replay = [("track", object()), ("rules", object())]  # a replay of the track cache has no detector
    assert detect_ahead(OmegaConf.create({"runtime": {"detect_ahead": True}}), replay) == 0
