"""Every config file composes and instantiates, so a broken YAML never ships."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from tests.conftest import ROOT, clip, run_cli
from vizoflow.cameras import camera_config, camera_names
from vizoflow.cli import CONF_DIR
from vizoflow.config_keys import check_config_files
from vizoflow.errors import ConfigError
from vizoflow.graph import build_nodes, topological_order
from vizoflow.pipeline import build_site, build_source, site_services
from vizoflow.runtime import PerCamera
from vizoflow.zones import Zones

GROUPS = {p.parent.name: sorted(q.stem for q in p.parent.glob("*.yaml")) for p in CONF_DIR.glob("*/*.yaml")}
SITES = GROUPS.pop("site")
EXPERIMENTS = GROUPS.pop("experiment")


def test_every_yaml_is_covered():
    covered = ({f"{g}/{o}" for g, opts in GROUPS.items() for o in opts} | {f"site/{s}" for s in SITES}
               | {f"experiment/{e}" for e in EXPERIMENTS})
    on_disk = {str(p.relative_to(CONF_DIR).with_suffix("")) for p in CONF_DIR.glob("*/*.yaml")}
    assert covered == on_disk and "site/demo" in covered


def required_values(group: str, option: str) -> list[str]:
    """Values a group option leaves as ``???``, filled for the test."""
    if group == "source":
        return [f"source.path={clip('tud-campus')}"] if option == "file" else ["source.url=rtsp://127.0.0.1:9/cam"]
    return [f"source.path={clip('tud-campus')}"]


@pytest.mark.parametrize(("group", "option"), [
    pytest.param(g, o, marks=[pytest.mark.slow] if g in ("detector", "tracker") else [])  # loads a model
    for g, opts in GROUPS.items() for o in opts])
def test_group_option_composes_and_instantiates(compose_cfg, group, option):
    cfg = compose_cfg(f"{group}={option}", *required_values(group, option))
    built = instantiate(cfg[group])
    try:
        assert isinstance(built, get_class(cfg[group]._target_)), (type(built), cfg[group]._target_)
        if (group, option) == ("source", "file"):
            first = next(iter(built))
            assert (first.index, first.image.shape) == (0, (480, 640, 3))  # tud-campus's first frame
        elif group != "source":
            assert callable(built.process)
    finally:
        getattr(built, "close", lambda: None)()


@pytest.mark.slow  # builds every node, the detector's model included
@pytest.mark.parametrize("site", SITES)
def test_site_composes_and_its_whole_graph_builds(compose_cfg, site, monkeypatch, tmp_path):
    for camera in ("ENTRANCE", "CHECKOUT"):
        monkeypatch.setenv(f"STORE42_{camera}_URL", "rtsp://127.0.0.1:9/cam")  # not opened until iterated
    cfg = compose_cfg(f"+site={site}", f"evidence.dir={tmp_path}/segments")
    declared = yaml.safe_load((CONF_DIR / "site" / f"{site}.yaml").read_text())
    several = bool(camera_names(cfg))
    with site_services(cfg) as services:
        source, nodes = build_site(cfg, services) if several else (build_source(cfg), build_nodes(cfg.graph, services=services))
        check_site_graph(cfg, declared, several, source, nodes)


def check_site_graph(cfg, declared, several, source, nodes) -> None:
    """Each node is what its graph entry names, per camera unless shared; zones as declared. Closes all."""
    try:
        assert [name for name, _ in nodes] == topological_order(cfg.graph)
        assert [name for name, _ in nodes][:3] == ["gate", "detect", "track"]
        for name, node in nodes:  # each node is what the site's graph entry names, per camera unless shared
            per_camera = node.instances.values() if isinstance(node, PerCamera) else [node]
            assert isinstance(node, PerCamera) == (several and not cfg.graph[name].get("shared", False)), name
            for own in per_camera:
                assert isinstance(own, get_class(cfg.graph[name].node._target_)), name
        zones = {}  # camera -> the ids of the Zones its nodes hold: one object per camera
        for _, node in nodes:
            for camera, own in (node.instances.items() if isinstance(node, PerCamera) else [(None, node)]):
                if isinstance(getattr(own, "zones", None), Zones):
                    zones.setdefault(camera, set()).add(id(own.zones))
        assert zones and all(len(ids) == 1 for ids in zones.values()), zones
        if several:
            assert set(source.cameras) == set(declared["cameras"])
            for camera in source.cameras:
                assert set(camera_config(cfg, camera).zones) == set(declared["cameras"][camera]["zones"])
        else:
            assert isinstance(source, get_class(cfg.source._target_))
            assert set(cfg.zones) == set(declared.get("zones") or {})
    finally:
        for _, node in nodes:
            for own in (node.instances.values() if isinstance(node, PerCamera) else [node]):
                getattr(own, "close", lambda: None)()
        source.close()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_into_a_batch_with_existing_labels(compose_cfg, experiment):
    from vizoflow.batch import BatchRunner
    from vizoflow.evaluate import load_labels

    cfg = compose_cfg("+site=intel_table", f"+experiment={experiment}")
    assert cfg.mode == "batch"
    assert [Path(v).resolve() for v in BatchRunner(cfg).videos] == [clip("intel-one-by-one").resolve()]
    assert load_labels(ROOT / cfg.eval.labels).height > 0


def compose_checked(*overrides: str, config_dir: Path | None = None) -> DictConfig:
    """Compose like the CLI (``config_dir`` as ``--config-dir`` would add it) and check the files' keys."""
    searchpath = [f"hydra.searchpath=[file://{config_dir}]"] if config_dir else []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*searchpath, *overrides], return_hydra_config=True)
    check_config_files(cfg.hydra, cfg)
    return cfg


def write_conf(root: Path, group: str, name: str, body: str, header: str = "# @package _global_\n") -> Path:
    """A config file ``<root>/<group>/<name>.yaml``, as a user would add one in their own config dir."""
    path = root / group / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + textwrap.dedent(body))
    return path


@pytest.mark.parametrize(("group", "option"), [("site", s) for s in SITES] + [("experiment", e) for e in EXPERIMENTS])
def test_every_shipped_site_and_experiment_sets_only_known_keys(group, option, monkeypatch):
    monkeypatch.setenv("STORE42_RTSP_URL", "rtsp://127.0.0.1:9/cam")
    site = [] if group == "site" else ["+site=intel_table"]
    cfg = compose_checked(*site, f"+{group}={option}")
    assert cfg.hydra.runtime.choices[group] == option


@pytest.mark.parametrize(("group", "body", "key", "hint"), [
    ("site", "rules: {unattended: {secnds: 20}}", "rules.unattended.secnds",
     "did you mean 'rules.unattended.seconds'?"),
    ("site", "source: {pth: /v.mp4}", "source.pth", "did you mean 'source.path'?"),
    ("site", "evidence: {retention: {max_age_hour: 1}}", "evidence.retention.max_age_hour",
     "did you mean 'evidence.retention.max_age_hours'?"),
    ("site", "detector: {conff: 0.3}", "detector.conff", "did you mean 'detector.conf'?"),
    ("site", "graph: {count: {node: {_target_: tests.custom_nodes.PeopleCounter}, aftr: [track]}}",
     "graph.count.aftr", "did you mean 'graph.count.after'?"),
    ("site", "cameras: {door: {url: rtsp://x}}", "cameras.door.url", "known keys at 'cameras.door': calibration"),
    ("site", "cameras: {door: {rules: {queue: {min_peple: 2}}}}", "cameras.door.rules.queue.min_peple",
     "did you mean 'cameras.door.rules.queue.min_people'?"),
    ("site", "tenant: acme", "tenant", "known keys at the top level: batch, calibration, camera"),
    ("experiment", "eval: {label: data/labels/shared.csv}", "eval.label", "did you mean 'eval.labels'?"),
])
def test_an_unknown_key_in_a_site_or_experiment_file_names_key_file_and_closest_key(tmp_path, group, body, key, hint):
    path = write_conf(tmp_path, group, "mine", body)
    with pytest.raises(ConfigError) as info:
        compose_checked(f"+{group}=mine", config_dir=tmp_path)
    message = str(info.value)
    assert f"unknown key '{key}' in {path}: {hint}" in message and "\n" not in message


def test_a_site_adds_zones_and_graph_nodes_and_replaces_free_values(tmp_path):
    """What a site may do without a schema entry: README "Adding your own node", zones, calibration, pairs."""
    write_conf(tmp_path, "site", "mine", """\
        defaults:
          - override /source: rtsp
        source: {url: rtsp://127.0.0.1:9/cam, stall_seconds: 3}
        zones:
          door: [[0, 0], [10, 0], [10, 10]]
        calibration: {image: [[0, 0], [1, 0], [1, 1], [0, 1]], floor: [[0, 0], [1, 0], [1, 1], [0, 1]]}
        rules:
          interaction: {pairs: {door: door}}
          unattended: {zone: door, seconds: 12}
        graph:
          preview: null
          count:
            node: {_target_: tests.custom_nodes.PeopleCounter, label: shoppers}
            after: [track]
        """)
    cfg = compose_checked("+site=mine", config_dir=tmp_path)
    assert cfg.rules.unattended.seconds == 12 and cfg.source.stall_seconds == 3
    order = topological_order(cfg.graph)
    assert order[:4] == ["gate", "detect", "track", "appearance"] and "count" in order


def test_a_site_file_without_the_global_package_line_is_an_error(tmp_path):
    path = write_conf(tmp_path, "site", "mine", "rules: {unattended: {seconds: 20}}", header="")
    with pytest.raises(ConfigError, match=f"{path}: .*'# @package _global_'"):
        compose_checked("+site=mine", config_dir=tmp_path)


@pytest.mark.slow  # the CLI, twice
def test_a_typo_in_a_site_file_ends_the_cli_in_one_line_with_exit_code_2(tmp_path):
    """The user's path: their own site in ``--config-dir``, a typo, ``python -m vizoflow``."""
    body = f"source: {{path: {clip('tud-campus')}}}\nrules: {{unattended: {{secnds: 20}}}}\n"
    path = write_conf(tmp_path, "site", "typo", body)
    args = ("--config-dir", str(tmp_path), "+site=typo", "mode=snapshot", f"output_dir={tmp_path}/out")
    done = run_cli(*args, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"vizoflow: error: unknown key 'rules.unattended.secnds' in {path}: did you mean 'rules.unattended.seconds'?"]
    assert not (tmp_path / "out" / "snapshot.png").exists()
    path.write_text(path.read_text().replace("secnds", "seconds"))
    fixed = run_cli(*args, timeout=120)
    assert fixed.returncode == 0, fixed.stderr
    assert (tmp_path / "out" / "snapshot.png").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("rules.unattended.seconds=abc", "'rules.unattended.seconds' must be a number, got 'abc'"),
    ("rules.queue.min_people=2.5", "'rules.queue.min_people' must be a whole number, got 2.5"),
    ("batch.cache=sometimes", "'batch.cache' must be true or false, got 'sometimes'"),
    ("detector.conf=high", "'detector.conf' must be a number, got 'high'"),
    ("rules.interaction.update_seconds=often", "'rules.interaction.update_seconds' must be a number, got 'often'"),
    ("+cameras.door.rules.queue.min_seconds=long", "'cameras.door.rules.queue.min_seconds' must be a number, got 'long'"),
    ("+cameras.door.source.stride=2.5", "'cameras.door.source.stride' must be a whole number, got 2.5"),
    ("evidence.drain_seconds=null", "'evidence.drain_seconds' must be a number, got null"),
    ("runtime.trim_seconds=often", "'runtime.trim_seconds' must be a number, got 'often'"),
    ("runtime.trim_seconds=true", "'runtime.trim_seconds' must be a number, got True"),
    ("runtime.malloc_arenas=1.5", "'runtime.malloc_arenas' must be a whole number, got 1.5"),
    ("runtime.mmap_threshold_kb=big", "'runtime.mmap_threshold_kb' must be a whole number, got 'big'"),
    ("status.port='9108'", "'status.port' must be a whole number, got '9108' (text; a number from an environment "
     "variable needs ${oc.decode:${oc.env:NAME}})"),
])
def test_a_value_of_the_wrong_type_is_a_one_line_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        compose_checked(f"source.path={clip('tud-campus')}", override)
    assert str(info.value) == message


def test_values_of_the_right_type_pass_whatever_their_source(tmp_path):
    write_conf(tmp_path, "site", "mine", "rules: {unattended: {seconds: 12, update_seconds: 5}, queue: {min_people: 2}}")
    cfg = compose_checked("+site=mine", "rules.interaction.max_distance=2", "filters.max_ratio=0.8",
                          "batch.cache=false", "runtime.trim_seconds=null", "runtime.malloc_arenas=null",
                          "runtime.mmap_threshold_kb=null", config_dir=tmp_path)
    assert (cfg.rules.unattended.seconds, cfg.rules.interaction.max_distance, cfg.batch.cache) == (12, 2, False)
    assert cfg.runtime.trim_seconds is None  # null turns the heap trimmer off
    assert (cfg.runtime.malloc_arenas, cfg.runtime.mmap_threshold_kb) == (None, None)  # null: glibc's own


@pytest.mark.slow  # the CLI
@pytest.mark.parametrize(("override", "message"), [
    ("rules.unattended.seconds=abc", "'rules.unattended.seconds' must be a number, got 'abc'"),  # a wrong type
    ("runtime.malloc_arenas=0", "runtime.malloc_arenas must be 1 or more, or null, got 0"),  # out of range
])
def test_a_bad_setting_ends_snapshot_mode_in_one_line(tmp_path, override, message):
    done = run_cli(f"source.path={clip('tud-campus')}", "mode=snapshot", override, f"output_dir={tmp_path}/out",
                   timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"vizoflow: error: {message}"]
    assert not (tmp_path / "out" / "snapshot.png").exists()
