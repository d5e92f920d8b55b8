"""Graph validation: every user mistake raises the right error naming the node."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.custom_nodes import PeopleCounter
from vizoflow.errors import ConfigError, GraphError
from vizoflow.graph import build_nodes, topological_order

COUNTER = "tests.custom_nodes.PeopleCounter"


def graph(**entries):
    return OmegaConf.create(entries)


def test_order_follows_inputs_and_keeps_declaration_order_for_ties():
    g = graph(c={"node": {"_target_": COUNTER}, "inputs": ["b"]},
              a={"node": {"_target_": COUNTER}, "inputs": ["source"]},
              b={"node": {"_target_": COUNTER}, "inputs": ["a"]},
              z={"node": {"_target_": COUNTER}, "inputs": ["a"]})
    assert topological_order(g) == ["a", "b", "z", "c"]


def test_disabled_entry_is_skipped_and_inputs_naming_it_are_ignored():
    g = graph(a={"node": {"_target_": COUNTER}, "inputs": ["source"]}, preview=None,
              b={"node": {"_target_": COUNTER}, "inputs": ["a", "preview"]})
    assert topological_order(g) == ["a", "b"]


@pytest.mark.parametrize(("entries", "node", "words"), [
    ({"a": {"node": {"_target_": COUNTER}, "inputs": ["detct"]}}, "a", "input 'detct' names no node"),
    ({"a": {"node": {"_target_": COUNTER}, "inputs": ["b"]},
      "b": {"node": {"_target_": COUNTER}, "inputs": ["a"]}}, "a", "cycle"),
    ({"a": {"node": {"label": "x"}, "inputs": ["source"]}}, "a", "no _target_"),
    ({"a": {"inputs": ["source"]}}, "a", "expected a mapping"),
    ({"a": {"node": {"_target_": COUNTER}, "inputs": "source"}}, "a", "must be a list"),
    ({"source": {"node": {"_target_": COUNTER}}}, "source", "reserved"),
    ({"a": {"node": {"_target_": COUNTER}, "inptus": ["b"]}}, "a", "unknown key 'inptus'"),
])
def test_malformed_graphs_raise_graph_error_naming_the_node(entries, node, words):
    with pytest.raises(GraphError) as info:
        build_nodes(graph(**entries))
    assert info.value.node == node
    assert f"'{node}'" in str(info.value) and words in str(info.value)


def test_required_value_names_the_full_key():
    g = graph(count={"node": {"_target_": COUNTER, "label": "???"}, "inputs": ["source"]})
    with pytest.raises(ConfigError, match=r"graph\.count\.node\.label"):
        build_nodes(g)


def test_unbuildable_class_is_a_graph_error():
    g = graph(bad={"node": {"_target_": "tests.custom_nodes.NoSuchClass"}, "inputs": ["source"]})
    with pytest.raises(GraphError, match="node 'bad': cannot build tests.custom_nodes.NoSuchClass"):
        build_nodes(g)


def test_object_without_process_is_rejected():
    g = graph(notanode={"node": {"_target_": "collections.OrderedDict"}, "inputs": ["source"]})
    with pytest.raises(GraphError, match="has no process"):
        build_nodes(g)


def test_user_node_from_yaml_is_built_with_its_arguments():
    nodes = build_nodes(graph(count={"node": {"_target_": COUNTER, "label": "shoppers"}, "inputs": ["source"]}))
    [(name, node)] = nodes
    assert name == "count" and isinstance(node, PeopleCounter) and node.label == "shoppers"
