"""The package as a user installs it: the wheel carries every config, and a user's own sites
live in their own folder (``--config-dir`` or ``$VIZO_CONFIG_DIR``).

``.ci/wheel-check`` goes further (the wheel installed into a fresh venv, run from outside the
checkout); these tests are the quick part of it that ``make test`` runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, clip, run_cli
from tests.test_config import compose_checked, write_conf
from vizoflow.cli import CONF_DIR
from vizoflow.errors import ConfigError

# What a wheel is built from: the tree without virtualenvs, outputs and earlier build leftovers.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "outputs", "multirun", "segments", "build", "dist",
                                     "*.egg-info", ".pytest_cache", "__pycache__", ".ipynb_checkpoints")

USER_SITE = """\
    site_name: mystore
    source: {{path: {clip}}}
    frame_size: [640, 480]
    zones:
      till: [[100, 100], [300, 100], [300, 300], [100, 300]]
    rules:
      unattended: {{zone: till, seconds: 12}}
    """


def build_wheel(tmp_path: Path) -> Path:
    """Build the wheel the way ``.ci/wheel-check`` does, from a copy of the tree.

    A copy, because setuptools writes ``build/`` and ``*.egg-info`` into the folder it
    builds (a stale ``build/lib`` could even put deleted files into the wheel). No build
    isolation: the test venv already has the setuptools the build needs (a runtime
    dependency), so nothing is downloaded.
    """
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCES)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("vizoflow-*.whl")
    return wheel


def test_the_wheel_carries_every_config_file_unchanged_and_the_command(tmp_path):
    """Compared against ``vizoflow/conf`` on disk, so a new config folder that the package-data
    patterns miss fails here instead of in a user's ``pip install``."""
    on_disk = {p.relative_to(CONF_DIR).as_posix(): p.read_bytes() for p in CONF_DIR.rglob("*") if p.is_file()}
    assert {"config.yaml", "site/demo.yaml", "site/store42.yaml", "source/file.yaml", "source/rtsp.yaml",
            "detector/yolo.yaml", "tracker/deepsort.yaml"} <= set(on_disk)
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = wheel.namelist()
        shipped = {n.removeprefix("vizoflow/conf/"): wheel.read(n) for n in names
                   if n.startswith("vizoflow/conf/") and not n.endswith("/")}
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = wheel.read(entry_points).decode()
    assert sorted(shipped) == sorted(on_disk)
    assert shipped == on_disk
    assert "vizoflow = vizoflow.cli:main" in scripts


def test_vizo_config_dir_adds_the_users_sites_checked_key_by_key(tmp_path, monkeypatch):
    write_conf(tmp_path, "site", "mystore", USER_SITE.format(clip=clip("tud-campus")))
    monkeypatch.setenv("VIZO_CONFIG_DIR", str(tmp_path))
    cfg = compose_checked("+site=mystore")
    assert (cfg.site_name, cfg.rules.unattended.seconds, list(cfg.zones)) == ("mystore", 12, ["till"])
    assert [s.path for s in cfg.hydra.runtime.config_sources if s.provider == "hydra.searchpath in main"] == [
        str(tmp_path)]

    typo = write_conf(tmp_path, "site", "typo", "rules: {unattended: {secnds: 20}}")
    with pytest.raises(ConfigError, match=f"unknown key 'rules.unattended.secnds' in {typo}: did you mean"):
        compose_checked("+site=typo")


def test_without_vizo_config_dir_only_the_shipped_configs_are_searched(monkeypatch):
    monkeypatch.delenv("VIZO_CONFIG_DIR", raising=False)
    cfg = compose_checked("+site=demo")
    assert [s.provider for s in cfg.hydra.runtime.config_sources] == ["hydra", "main", "schema"]
    assert cfg.hydra.runtime.config_sources[1].path == str(CONF_DIR)


def test_a_shipped_name_wins_over_the_users_file_of_the_same_name(tmp_path, monkeypatch):
    """docs/install.md says so: a user's folder is searched after the shipped configs (as Hydra does
    with --config-dir), so a user's ``site/demo.yaml`` is not used; give your sites your own names."""
    write_conf(tmp_path, "site", "demo", "site_name: not_the_demo\n")
    monkeypatch.setenv("VIZO_CONFIG_DIR", str(tmp_path))
    assert compose_checked("+site=demo").site_name == "demo"


@pytest.mark.slow  # the CLI, twice
@pytest.mark.parametrize("how", ["--config-dir", "VIZO_CONFIG_DIR"])
def test_the_cli_run_from_another_folder_snapshots_a_site_from_the_users_folder(tmp_path, how):
    """The README's user path: own sites in an own folder, ``vizoflow`` run from anywhere."""
    sites = tmp_path / "mysites"
    write_conf(sites, "site", "mystore", USER_SITE.format(clip=clip("tud-campus")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["--config-dir", str(sites)] if how == "--config-dir" else []
    env = {"VIZO_CONFIG_DIR": str(sites)} if how == "VIZO_CONFIG_DIR" else {"VIZO_CONFIG_DIR": ""}
    done = run_cli(*args, "+site=mystore", "mode=snapshot", cwd=elsewhere, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    (png,) = (elsewhere / "outputs" / "mystore").glob("*/snapshot.png")
    assert png.stat().st_size > 0 and f"zones drawn on the first frame: {png}" in done.stderr
