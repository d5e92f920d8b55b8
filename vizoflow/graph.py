"""Build a node graph from configuration: validate, sort, instantiate.

The graph is a named dict in YAML::

    graph:
      detect:  {node: {_target_: ...}, after: [source]}
      track:   {node: ${tracker},       after: [detect]}

Nodes run in the order they are declared, except that a node runs after every entry
its ``after`` names (``source`` is the frame source). ``after`` is an order, not a
wiring: every node gets the one :class:`~vizoflow.frame.Frame` as the node before it
in the run left it (``people`` drops impossible boxes and marks the trusted ones, the
rules add events), so a node that must see something runs after the node that makes it.

An entry's ``settings`` (usually a whole section of the config, ``settings: ${identity}``)
are passed to its node as keyword arguments, under the node's own keys, so a setting is
written once in its section and not repeated in the graph. An entry's ``uses`` names the
services of the run its node is handed as keyword arguments of those names
(``uses: [evidence]``: the site's :class:`~vizoflow.evidence.Evidence`; ``uses: [zones]``:
the camera's zones; ``uses: [embedders]``: the process's appearance models,
:class:`~vizoflow.reid.EmbedderPool`), started by :func:`~vizoflow.pipeline.run_pipeline`.

With several cameras (``cameras:``) every camera gets its own node of each entry, except
entries marked ``shared: true`` (the detector, the sinks of the site's tables and
analytics file): one node sees the frames of every camera. An entry set to ``null`` is
disabled (``graph.preview=null`` on the command line), and ``after`` entries naming it
are ignored, so disabling a node never breaks the nodes after it. Validation happens
before anything is instantiated, so a typo fails in milliseconds, not after the
detector loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from vizoflow.errors import ConfigError, GraphError, VizoflowError

if TYPE_CHECKING:  # the CLI imports this module before malloc is tuned: no numpy, no threads yet
    from vizoflow.node import Node

SOURCE = "source"
ENTRY_KEYS = ("node", "settings", "uses", "after", "shared")
SAME_AS = {"inputs": "after"}  # the key's older name: what to write instead


def _declared(graph: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Enabled entries of the graph, checked for shape, in declaration order."""
    entries: dict[str, Mapping[str, Any]] = {}
    for name, entry in graph.items():
        if entry is None:
            continue
        if name == SOURCE:
            raise GraphError(name, f"'{SOURCE}' is reserved for the frame source; rename the node")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("node"), Mapping):
            raise GraphError(name, "expected a mapping with keys 'node' (a config with _target_) and 'after'")
        if "_target_" not in entry["node"]:
            raise GraphError(name, "'node' has no _target_ (the class to build)")
        for key in entry:
            if key not in ENTRY_KEYS:  # e.g. 'aftr' would silently run the node right after the source
                close = [SAME_AS[key]] if key in SAME_AS else difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
                raise GraphError(name, f"unknown key '{key}' (an entry has only {', '.join(ENTRY_KEYS)}"
                                       + (f"; did you mean '{close[0]}'?)" if close else ")"))
        after = entry.get("after", [SOURCE])
        if isinstance(after, str) or not isinstance(after, (list, tuple, ListConfig)):
            raise GraphError(name, f"'after' must be a list of node names, got {after!r}")
        if entry.get("settings") is not None and not isinstance(entry["settings"], Mapping):
            raise GraphError(name, f"'settings' must be a mapping of keyword arguments, got {entry['settings']!r}")
        uses = entry.get("uses", [])
        if isinstance(uses, str) or not isinstance(uses, (list, tuple, ListConfig)):
            raise GraphError(name, f"'uses' must be a list of service names, got {uses!r}")
        if not isinstance(entry.get("shared", False), bool):
            raise GraphError(name, f"'shared' must be true or false, got {entry.get('shared')!r}")
        entries[str(name)] = entry
    return entries


def shared_entries(graph: Mapping[str, Any]) -> set[str]:
    """Names of the enabled entries marked ``shared: true`` (one node for all cameras)."""
    return {name for name, entry in _declared(graph).items() if entry.get("shared", False)}


def topological_order(graph: Mapping[str, Any]) -> list[str]:
    """Names of the enabled nodes in run order: declaration order, each moved after what it names in ``after``.

    Of the nodes whose ``after`` entries have all run, the one declared first runs
    next, so the YAML's order is the run order wherever it can be, and a run is
    reproducible.

    Raises:
        GraphError: ``after`` names no node, or the ``after`` lists form a cycle.
    """
    entries = _declared(graph)
    disabled = {str(name) for name, entry in graph.items() if entry is None}
    position = {name: i for i, name in enumerate(entries)}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name, entry in entries.items():
        after = [str(i) for i in entry.get("after", [SOURCE]) if str(i) not in disabled]
        for dep in after:
            if dep != SOURCE and dep not in entries:
                known = ", ".join([SOURCE, *entries]) or SOURCE
                raise GraphError(name, f"'after' names '{dep}', which is no node (known: {known})")
        sorter.add(name, *(d for d in after if d != SOURCE))
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        raise GraphError(cycle[0], "'after' lists form a cycle: " + " -> ".join(cycle)) from None
    order: list[str] = []
    ready: list[str] = []
    while sorter.is_active():
        ready = sorted({*ready, *sorter.get_ready()}, key=position.__getitem__)
        first = ready.pop(0)
        order.append(first)
        sorter.done(first)
    return order


def check_required(cfg: DictConfig, prefix: str = "") -> None:
    """Raise :class:`ConfigError` naming the first ``???`` value under ``cfg``.

    OmegaConf only complains about ``???`` when the value is read, deep inside
    instantiate; checking up front gives the user the full dotted key.
    """
    for key in cfg:
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"required value '{path}' is not set (it is '???'); pass {path}=... or set it in the site file")
        value = cfg._get_node(key)
        if isinstance(value, DictConfig) and not value._is_none() and not value._is_missing():
            check_required(value, path + ".")


def node_config(entry: Mapping[str, Any]) -> DictConfig:
    """What builds an entry's node: its ``settings`` with the ``node`` config's own keys on top.

    Both are resolved first: their interpolations (``${zones}``) point into the whole
    config, which a merged copy no longer is.

    Raises:
        MissingMandatoryValue: a ``???`` value is read.
    """
    settings = entry.get("settings")
    if settings is None:
        return entry["node"]
    merged = {**OmegaConf.to_container(settings, resolve=True), **OmegaConf.to_container(entry["node"], resolve=True)}
    return OmegaConf.create(merged)


def uses(graph: Mapping[str, Any]) -> set[str]:
    """Names of the services the enabled entries use."""
    return {str(s) for entry in _declared(graph).values() for s in entry.get("uses", [])}


def build_nodes(graph: DictConfig, only: set[str] | None = None,
                services: Mapping[str, Any] | None = None) -> list[tuple[str, Node]]:
    """Validate the graph and instantiate its nodes in run order (only those named in ``only``, if given).

    Args:
        graph: The ``graph:`` section.
        only: Build only these entries.
        services: The run's services by name, for entries that list them in ``uses``.

    Raises:
        GraphError: bad shape, unknown input, cycle, a service this run does not have,
            or a node that cannot be built.
        ConfigError: a required value (``???``) is not set.
    """
    services = services or {}
    order = topological_order(graph)
    nodes: list[tuple[str, Node]] = []
    for name in order:
        if only is not None and name not in only:
            continue
        check_required(graph[name]["node"], f"graph.{name}.node.")
        node_cfg = graph[name]["node"]
        wanted = [str(s) for s in graph[name].get("uses", [])]
        missing = [s for s in wanted if s not in services]
        if missing:
            raise GraphError(name, f"uses '{missing[0]}', which this run does not provide "
                                   f"(it has: {', '.join(services) or 'none'})")
        try:
            node_cfg = node_config(graph[name])
            node = instantiate(node_cfg, _convert_="all", **{s: services[s] for s in wanted})
        except MissingMandatoryValue as exc:
            raise ConfigError(f"graph node '{name}': required value '{exc.full_key}' is not set") from None
        except InstantiationException as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, VizoflowError):
                raise cause from None
            detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise GraphError(name, f"cannot build {node_cfg['_target_']}: {detail}") from exc
        if not callable(getattr(node, "process", None)):
            raise GraphError(name, f"{type(node).__name__} has no process(frame) method")
        nodes.append((name, node))
    return nodes
