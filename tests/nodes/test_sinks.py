from pathlib import Path

import cv2
import numpy as np

from vizoflow.frame import Frame
from vizoflow.nodes.sinks import LatestFrame


def frame(level: int, index: int = 0) -> Frame:
    return Frame(video="cam", index=index, timestamp=index / 10, image=np.full((24, 32, 3), level, np.uint8))


def test_the_latest_picture_is_written_at_most_every_few_seconds_and_at_close(tmp_path: Path):
    path = tmp_path / "cam" / "latest.jpg"
    node = LatestFrame(str(path), every_seconds=3600.0)
    node.process(frame(40))
    assert abs(int(cv2.imread(str(path)).mean()) - 40) <= 2  # the first frame at once
    node.process(frame(200, 1))
    assert abs(int(cv2.imread(str(path)).mean()) - 40) <= 2  # not again within every_seconds
    node.close()
    assert abs(int(cv2.imread(str(path)).mean()) - 200) <= 2  # the last one at close
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.jpg"]  # no temporary file left


def test_a_picture_that_cannot_be_written_does_not_stop_the_run(tmp_path: Path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    node = LatestFrame(str(blocker / "latest.jpg"), every_seconds=0.0)
    for i in range(3):
        assert node.process(frame(10, i)).index == i
    node.close()
    assert sum("could not write" in r.getMessage() for r in caplog.records) == 1  # logged once per streak
