from pathlib import Path

import pytest

from vizoflow.errors import ConfigError
from vizoflow.review.folders import Run, SafeFolder, SiteRuns


@pytest.fixture
def folder(tmp_path: Path) -> SafeFolder:
    root = tmp_path / "segments"
    root.mkdir()
    (root / "clip_1.mp4").write_bytes(b"clip")
    (tmp_path / "secret.mp4").write_bytes(b"not evidence")
    (root / "link_out.mp4").symlink_to(tmp_path / "secret.mp4")
    (root / "link_in.mp4").symlink_to(root / "clip_1.mp4")
    (root / ".hidden.mp4").write_bytes(b"x")
    (root / "sub").mkdir()
    return SafeFolder(root)


def test_a_plain_name_inside_is_served(folder: SafeFolder):
    assert folder.file("clip_1.mp4", (".mp4",)) == (folder.root / "clip_1.mp4").resolve()
    assert folder.file("link_in.mp4") == (folder.root / "clip_1.mp4").resolve()  # a link that stays inside


@pytest.mark.parametrize("name", ["../secret.mp4", "..", "%2e%2e/secret.mp4", "..%2fsecret.mp4", "sub/../clip_1.mp4",
                                  "/etc/passwd", "link_out.mp4", ".hidden.mp4", "missing.mp4", "sub", "clip_1.mp4\x00",
                                  "", "clip_1.MP4x"])
def test_nothing_outside_or_odd_is_served(folder: SafeFolder, name: str):
    assert folder.file(name, (".mp4",)) is None


def test_a_suffix_outside_the_allowed_is_refused(folder: SafeFolder):
    assert folder.file("clip_1.mp4", (".png",)) is None


def test_a_folder_that_does_not_exist_serves_nothing(tmp_path: Path):
    assert SafeFolder(tmp_path / "none").file("a.mp4") is None


def make_run(root: Path, name: str, marker: str = "run.json") -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / marker).write_text("{}")
    return path


def test_runs_are_folders_with_outputs_newest_first(tmp_path: Path):
    make_run(tmp_path, "2026-12-01_10-00-00")
    make_run(tmp_path, "2026-12-03_10-00-00", "events.parquet")
    (tmp_path / "2026-12-04_10-00-00").mkdir()  # a serve or snapshot run: no outputs
    runs = SiteRuns(tmp_path)
    assert [r.name for r in runs.runs()] == ["2026-12-03_10-00-00", "2026-12-01_10-00-00"]
    assert runs.pick().name == "2026-12-03_10-00-00"
    assert runs.pick("2026-12-01_10-00-00").name == "2026-12-01_10-00-00"
    assert runs.pick("../etc") is None and runs.pick("2026-12-04_10-00-00") is None


def test_a_pinned_run_is_shown_first_even_before_it_has_outputs(tmp_path: Path):
    make_run(tmp_path, "2026-12-03_10-00-00")
    live = tmp_path / "2026-12-02_09-00-00"
    live.mkdir()
    runs = SiteRuns(tmp_path, live)
    assert runs.pick().path == live
    assert {r.name for r in runs.runs()} == {"2026-12-03_10-00-00", "2026-12-02_09-00-00"}


def test_a_pinned_run_that_does_not_exist_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="serve.run: no run folder"):
        SiteRuns(tmp_path, "nope")


def test_days_come_from_the_day_files(tmp_path: Path):
    run = make_run(tmp_path, "r1")
    for name in ["analytics_metrics_2026-12-01.json", "analytics_metrics_2026-12-02.json", "analytics_metrics.json",
                 "analytics_metrics_x.json"]:
        (run / name).write_text("{}")
    assert SiteRuns(tmp_path).pick().days() == ["2026-12-02", "2026-12-01"]


def test_a_symlink_to_a_folder_elsewhere_is_not_a_run(tmp_path: Path):
    root, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    make_run(root, "real")
    make_run(tmp_path, "elsewhere")
    (root / "linked").symlink_to(elsewhere)
    assert [r.name for r in SiteRuns(root).runs()] == ["real"]
    assert SiteRuns(root).pick("linked") is None


def test_a_live_run_is_a_run_from_its_first_picture_on(tmp_path: Path):
    one = tmp_path / "2026-12-05_09-00-00"
    one.mkdir()
    (one / "latest.jpg").write_bytes(b"jpg")
    several = tmp_path / "2026-12-05_10-00-00"
    (several / "entrance").mkdir(parents=True)
    (several / "entrance" / "latest.jpg").write_bytes(b"jpg")
    assert [r.name for r in SiteRuns(tmp_path).runs()] == ["2026-12-05_10-00-00", "2026-12-05_09-00-00"]


def test_a_table_is_the_runs_own_else_its_newest_closed_hour_else_the_newest_kept_earlier_one(tmp_path: Path):
    run = Run("store42", tmp_path)
    assert run.table("tracks") is None
    for name in ("tracks_20261201T080000Z.parquet", "tracks_20261203T080000Z.parquet", "tracks_20261203T080000Z_2.parquet"):
        (tmp_path / name).write_bytes(b"PAR1")
    assert run.table("tracks").name == "tracks_20261203T080000Z_2.parquet"  # restarted: the earlier runs' tables
    (tmp_path / "tracks.parquet.parts").mkdir()
    (tmp_path / "tracks.parquet.partial").write_bytes(b"PAR1")  # the open part: no footer, never served
    for n in (1, 2):
        (tmp_path / "tracks.parquet.parts" / f"tracks-{n:05d}.parquet").write_bytes(b"PAR1")
    assert run.table("tracks") == tmp_path / "tracks.parquet.parts" / "tracks-00002.parquet"  # live: the last hour
    (tmp_path / "tracks.parquet").write_bytes(b"PAR1")
    assert run.table("tracks") == tmp_path / "tracks.parquet"  # ended
