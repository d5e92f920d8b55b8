import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vizoflow.frame import Frame
from vizoflow.nodes.sinks import LatestFrame, ParquetTableWriter


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


def test_rows_wait_in_memory_no_longer_than_flush_seconds(tmp_path: Path):
    now = [0.0]
    writer = ParquetTableWriter(tmp_path / "t.parquet", pa.schema([("x", pa.int64())]), row_group=1000,
                                flush_seconds=60, clock=lambda: now[0])
    for t in range(0, 150, 10):  # a row every 10 s, far fewer than a row group's 1000
        now[0] = float(t)
        writer.extend({"x": [t]}, 1)
    now[0] = 200.0
    writer.extend({"x": []}, 0)  # a frame without boxes still lets a waiting row group go
    path = writer.close()
    table = pq.ParquetFile(path)
    sizes = [table.metadata.row_group(i).num_rows for i in range(table.metadata.num_row_groups)]
    assert sizes == [7, 7, 1]  # rows from 0-60 s, 70-130 s, and 140 s (written at 200 s)
    assert table.read().column("x").to_pylist() == list(range(0, 150, 10))


def test_a_row_group_is_written_when_full(tmp_path: Path):
    writer = ParquetTableWriter(tmp_path / "t.parquet", pa.schema([("x", pa.int64())]), row_group=4,
                                clock=lambda: 0.0)
    for x in range(10):
        writer.extend({"x": [x]}, 1)
    meta = pq.ParquetFile(writer.close()).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 2]


SCHEMA = pa.schema([("x", pa.int64())])


def test_parts_are_closed_every_part_seconds_and_joined_into_one_file_at_close(tmp_path: Path):
    now = [0.0]
    writer = ParquetTableWriter(tmp_path / "t.parquet", SCHEMA, row_group=4, part_seconds=100, clock=lambda: now[0])
    for t in range(0, 350, 10):  # a row every 10 s
        now[0] = float(t)
        writer.extend({"x": [t]}, 1)
        if t == 250:  # two parts closed by now (at 100 and 200 s, with that row), readable while the run goes on
            assert [p.name for p in sorted(writer.parts.iterdir())] == ["t-00001.parquet", "t-00002.parquet"]
            assert pq.read_table(writer.parts).column("x").to_pylist() == list(range(0, 210, 10))
    path = writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # the parts and their folder are gone
    table = pq.ParquetFile(path)
    assert table.read().column("x").to_pylist() == list(range(0, 350, 10))
    assert max(table.metadata.row_group(i).num_rows for i in range(table.metadata.num_row_groups)) == 4


KILLED_WRITER = """
import os, signal, sys
import pyarrow as pa
from vizoflow.nodes.sinks import ParquetTableWriter
now = [0.0]
writer = ParquetTableWriter(sys.argv[1], pa.schema([("x", pa.int64())]), row_group=2, part_seconds=30.0,
                            clock=lambda: now[0])
for x in range(9):  # a row every 10 s: parts closed at 30 s (rows 0-3) and 60 s (4-6); 7 and 8 in the open part
    now[0] = 10.0 * x
    writer.extend({"x": [x]}, 1)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_loses_only_its_open_part_and_the_next_run_into_the_folder_keeps_the_rest(tmp_path: Path):
    path = tmp_path / "t.parquet"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert not path.exists()
    # rows 7 and 8 were written into t.parquet.partial, which has no footer: lost
    assert pq.read_table(tmp_path / "t.parquet.parts").column("x").to_pylist() == [0, 1, 2, 3, 4, 5, 6]
    last_written = (tmp_path / "t.parquet.parts" / "t-00002.parquet").stat().st_mtime
    writer = ParquetTableWriter(path, SCHEMA)  # the service restarted into its folder
    writer.extend({"x": [100, 101]}, 2)
    assert pq.read_table(writer.close()).column("x").to_pylist() == [100, 101]  # its own rows only
    aside = tmp_path / f"t_{datetime.fromtimestamp(last_written, UTC):%Y%m%dT%H%M%SZ}.parquet"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.parquet", aside.name])
    assert pq.read_table(aside).column("x").to_pylist() == [0, 1, 2, 3, 4, 5, 6]


def test_an_earlier_runs_table_in_the_folder_is_kept_not_overwritten(tmp_path: Path):
    for rows in ([1, 2], [3], [4, 5]):
        writer = ParquetTableWriter(tmp_path / "t.parquet", SCHEMA)
        writer.extend({"x": rows}, len(rows))
        writer.close()
        os.utime(tmp_path / "t.parquet", (1_790_000_000, 1_790_000_000))  # all three ended in the same second
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t.parquet", "t_20260921T141320Z.parquet", "t_20260921T141320Z_2.parquet"]
    assert [pq.read_table(tmp_path / name).column("x").to_pylist() for name in sorted(os.listdir(tmp_path))] == [
        [4, 5], [1, 2], [3]]


def test_without_parts_the_file_is_published_at_close_as_one_part(tmp_path: Path):
    writer = ParquetTableWriter(tmp_path / "t.parquet", SCHEMA, part_seconds=None, clock=lambda: 1e9)
    writer.extend({"x": [1, 2]}, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet.partial"]
    assert pq.read_table(writer.close()).column("x").to_pylist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_a_quiet_table_closes_its_part_on_time_without_new_rows(tmp_path: Path):
    now = [0.0]
    writer = ParquetTableWriter(tmp_path / "t.parquet", SCHEMA, row_group=1000, part_seconds=3600,
                                clock=lambda: now[0])
    writer.extend({"x": [1, 2]}, 2)  # the evening's last rows, then nobody for hours
    now[0] = 3599.0
    writer.tick()
    assert not writer.parts.exists()
    now[0] = 3600.0
    writer.tick()
    assert pq.read_table(writer.parts).column("x").to_pylist() == [1, 2]  # readable though no row came
    writer.tick()  # nothing new: no empty part
    assert len(list(writer.parts.iterdir())) == 1
    assert pq.read_table(writer.close()).column("x").to_pylist() == [1, 2]
