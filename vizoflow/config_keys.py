"""Unknown keys in site and experiment files, and values of the wrong type, are errors.

Hydra checks command-line overrides against the composed config (``rules.x=1`` fails
when ``rules.x`` does not exist), but a file merged through the defaults list may add
any key: ``rules: {unattended: {secnds: 20}}`` in a site becomes a key nobody reads,
and the threshold silently stays 30 s. So every file that overrides the shared config
(a ``site`` or ``experiment``, and any other ``# @package _global_`` file outside the
primary config's own groups) is checked key by key against the schema: the primary
config (``conf/config.yaml``) with the chosen option of each of its groups
(``source``, ``detector``, ``tracker``). Files are found the way Hydra found them:
``conf/``, ``--config-dir`` and ``hydra.searchpath``, first match wins.

Free-form, so not checked here:

- zone names (``zones.<name>``) and graph entry names (``graph.<name>``: a site may
  add nodes). A graph entry has only ``node``, ``settings``, ``uses``, ``after`` and ``shared``; the node's own
  arguments are checked when it is built.
- anything below a value the schema gives as ``null``, a list or a string
  (``calibration``, ``rules.interaction.pairs``): the file replaces the value and its
  reader checks it.
- ``hydra``: Hydra checks its own keys.

Types are declared once, by the defaults: a setting whose default is a number must be
a number, a whole number where the default is one, and true/false where it is a
boolean, wherever the value comes from (a file, the command line, a camera entry).
Settings whose default is ``null`` have their type in :data:`NULLABLE`; only those
may be set to ``null``. So
``rules.unattended.seconds=abc`` is an error in every mode, before any model loads,
instead of a string that fails (or not) deep inside a node.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from vizoflow.cameras import CAMERA_KEYS
from vizoflow.errors import ConfigError
from vizoflow.graph import SAME_AS

OVERRIDING_GROUPS = ("site", "experiment")  # checked even without `# @package _global_` (then it is an error)
WILDCARD = "*"
FREE_FORM: dict[str, Any] = {  # replaces these subtrees of the schema; None = any value
    "zones": {WILDCARD: None},
    "lines": {WILDCARD: None},
    "graph": {WILDCARD: {"node": None, "settings": None, "uses": None, "after": None, "shared": None}},
    "hydra": None,
}

# Settings whose default is null: the type a value must have when it is set.
NULLABLE: dict[str, type] = {
    "filters.max_ratio": float, "filters.life_memory": float,
    "rules.interaction.update_seconds": float, "rules.unattended.update_seconds": float,
    "rules.queue.update_seconds": float, "evidence.retention.max_age_hours": float,
    "evidence.retention.max_total_gb": float, "status.port": int, "batch.ray_cpus": int,
    "source.start_time": float, "detect.fps": float, "tracker.embed_refresh_seconds": float, "serve.port": int,
    "runtime.trim_seconds": float, "runtime.malloc_arenas": int, "runtime.mmap_threshold_kb": int,
}

WHAT = {bool: "true or false", int: "a whole number", float: "a number"}


@dataclass(frozen=True)
class ConfigFile:
    """One config file as Hydra loads it.

    Attributes:
        shown: Where it is, for messages (a path for files on disk).
        package: Where its keys land in the config, dotted; ``""`` is the root (``_global_``).
        content: Its keys, without its defaults list, interpolations unresolved.
        defaults: Its defaults list.
    """

    shown: str
    package: str
    content: dict[str, Any]
    defaults: list[Any]


def _package(header: Mapping[str, Any], group: str) -> str:
    """Hydra 1.3's package of a file in ``group``: its ``# @package`` line, else the group's path."""
    package = header.get("package")
    if package is None:
        return group.replace("/", ".")
    package = str(package).replace("_group_", group.replace("/", "."))
    return "" if package == "_global_" else package.removeprefix("_global_.")


class SearchPath:
    """Hydra's config sources of a composed config, searched in Hydra's order.

    Args:
        sources: ``hydra.runtime.config_sources`` (``path``, ``schema``, ``provider`` each).
    """

    def __init__(self, sources: Any) -> None:
        from hydra._internal.sources_registry import SourcesRegistry  # hydra-core is pinned (1.3.8)

        registry = SourcesRegistry.instance()
        self.sources = [registry.resolve(s.schema)(s.provider, f"{s.schema}://{s.path}") for s in sources]

    def load(self, config_path: str, group: str = "") -> ConfigFile | None:
        """The first file named ``config_path`` (``site/demo``), or None when no source has it."""
        for source in self.sources:
            if not source.is_config(config_path):
                continue
            result = source.load_config(config_path)
            content = OmegaConf.to_container(result.config, resolve=False)
            assert isinstance(content, dict)
            defaults = content.pop("defaults", [])
            shown = (str(Path(source.path) / f"{config_path}.yaml") if source.scheme() == "file"
                     else f"{source.full_path()}/{config_path}")
            return ConfigFile(shown, _package(result.header, group), content, list(defaults or []))
        return None


def _nest(package: str, content: dict[str, Any]) -> dict[str, Any]:
    for part in reversed([p for p in package.split(".") if p]):
        content = {part: content}
    return content


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _groups(defaults: list[Any]) -> set[str]:
    """Group names a defaults list declares (``- source: file``, ``- override /source: rtsp``)."""
    names = set()
    for entry in defaults:
        if isinstance(entry, Mapping):
            for key in entry:
                names.add(str(key).removeprefix("override ").removeprefix("optional ").strip().lstrip("/"))
    return names


def unknown_keys(content: Mapping[str, Any], schema: Any, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    """``(dotted key, known keys beside it)`` for every key of ``content`` the schema does not have.

    A schema value that is not a mapping (``None``, a list, a string) accepts any value.
    """
    if not isinstance(schema, Mapping):
        return
    for key, value in content.items():
        path = f"{prefix}{key}"
        if key in schema:
            child = schema[key]
        elif WILDCARD in schema:
            child = schema[WILDCARD]
        else:
            yield path, sorted(str(k) for k in schema if k != WILDCARD)
            continue
        if isinstance(value, Mapping):
            yield from unknown_keys(value, child, path + ".")


def _message(key: str, known: list[str], shown: str, more: int) -> str:
    parent, _, name = key.rpartition(".")
    close = [SAME_AS[name]] if name in SAME_AS and SAME_AS[name] in known else \
        difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    where = f"'{parent}'" if parent else "the top level"
    hint = (f"did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close
            else f"known keys at {where}: {', '.join(known) or 'none'}")
    extra = f" ({more} more unknown key{'s' if more > 1 else ''} in that file)" if more else ""
    return f"unknown key '{key}' in {shown}: {hint}{extra}"


class KeyChecker:
    """Checks the overriding files of one composition against its schema.

    Args:
        hydra_cfg: The composition's ``hydra`` node (``HydraConfig.get()`` in the app;
            ``compose(..., return_hydra_config=True).hydra`` in a test).
    """

    def __init__(self, hydra_cfg: DictConfig) -> None:
        self.path = SearchPath(hydra_cfg.runtime.config_sources)
        self.choices = {str(k): v for k, v in hydra_cfg.runtime.choices.items()
                        if v is not None and not str(k).startswith("hydra/")}
        primary = self.path.load(str(hydra_cfg.job.config_name))
        if primary is None:  # not from a file (a structured config): nothing to compare with
            self.schema_groups: set[str] = set(self.choices)
            self.schema: dict[str, Any] = {}
            return
        self.schema_groups = _groups(primary.defaults)
        self.schema = self._schema(primary)

    def _overriding(self, group: str, file: ConfigFile) -> bool:
        return group not in self.schema_groups and (group in OVERRIDING_GROUPS or file.package == "")

    def _files(self) -> Iterator[tuple[str, ConfigFile]]:
        for group, option in self.choices.items():
            file = self.path.load(f"{group}/{option}", group)
            if file is not None:
                yield group, file

    def _schema(self, primary: ConfigFile) -> dict[str, Any]:
        """The primary config over its groups' chosen options, with the free-form subtrees opened."""
        schema: dict[str, Any] = {}
        for group, file in self._files():
            if not self._overriding(group, file):
                _merge(schema, _nest(file.package, file.content))
        _merge(schema, primary.content)
        schema.update(FREE_FORM)
        # a camera's source may be of another kind than the site's (keys unchecked); its values are typed
        schema["cameras"] = {WILDCARD: {key: None if key == "source" else schema.get(key) for key in CAMERA_KEYS}}
        return schema

    def check(self) -> None:
        """Raise on the first unknown key of the first overriding file that has one.

        Raises:
            ConfigError: one line naming the key, the file and the closest known key.
        """
        if not self.schema:
            return
        for group, file in self._files():
            if not self._overriding(group, file):
                continue
            if group in OVERRIDING_GROUPS and file.package:
                raise ConfigError(f"{file.shown}: a {group} file sets values across the whole config, so its "
                                  f"first line must be '# @package _global_' (without it every key lands under "
                                  f"'{file.package}.' and is ignored)")
            found = list(unknown_keys(_nest(file.package, file.content), self.schema))
            if found:
                key, known = found[0]
                raise ConfigError(_message(key, known, file.shown, len(found) - 1))


    def check_types(self, cfg: DictConfig) -> None:
        """Raise on the first value whose type is not its default's (see the module docstring).

        Raises:
            ConfigError: one line naming the key, the expected type and the value.
        """
        types = {**self.schema, "cameras": {WILDCARD: {**self.schema["cameras"][WILDCARD],
                                                       "source": self.schema.get("source")}}} if self.schema else {}
        for problem in _wrong_types(cfg, types):
            raise ConfigError(problem)


def _kind(default: Any) -> type | None:
    """The type a value must have, given its default; None: any value."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return type(default)
    return None


def _parses(text: str) -> bool:
    """Whether YAML would read ``text`` as a number or a boolean."""
    try:
        return isinstance(yaml.safe_load(text), (int, float, bool))
    except yaml.YAMLError:
        return False


def _wrong_types(cfg: DictConfig, schema: Any, prefix: str = "") -> Iterator[str]:
    if not isinstance(schema, Mapping):
        return
    for key in cfg:
        path = f"{prefix}{key}"
        child = schema.get(key, schema.get(WILDCARD))
        try:
            value = cfg[key]
        except Exception:  # noqa: BLE001 - an unset environment variable or a '???': reported where it is read
            continue
        if isinstance(value, DictConfig):
            yield from _wrong_types(value, child, path + ".")
            continue
        setting = path.split(".", 2)[-1] if path.startswith("cameras.") else path
        kind = NULLABLE.get(setting) or _kind(child)
        if kind is None or isinstance(child, Mapping):
            continue
        if value is None:
            if setting not in NULLABLE:  # e.g. evidence.drain_seconds=null: an unbounded wait at exit
                yield f"'{path}' must be {WHAT[kind]}, got null"
            continue
        allowed = (bool,) if kind is bool else (int,) if kind is int else (int, float)
        if not isinstance(value, allowed) or (kind is not bool and isinstance(value, bool)):
            hint = ""
            if isinstance(value, str) and _parses(value):  # e.g. ${oc.env:PORT,9108}: environment values are text
                hint = " (text; a number from an environment variable needs ${oc.decode:${oc.env:NAME}})"
            yield f"'{path}' must be {WHAT[kind]}, got {value!r}{hint}"


def check_config_files(hydra_cfg: DictConfig, cfg: DictConfig | None = None) -> None:
    """Raise :class:`ConfigError` when a site or experiment file sets a key the config does not have,
    or (given the composed ``cfg``) a value has the wrong type."""
    checker = KeyChecker(hydra_cfg)
    checker.check()
    if cfg is not None:
        checker.check_types(cfg)
