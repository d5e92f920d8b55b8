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


def test_nodes_run_in_declaration_order_moved_only_after_what_they_name():
    g = graph(c={"node": {"_target_": COUNTER}, "after": ["b"]},
              a={"node": {"_target_": COUNTER}, "after": ["source"]},
              b={"node": {"_target_": COUNTER}, "after": ["a"]},
              z={"node": {"_target_": COUNTER}, "after": ["a"]})
    assert topological_order(g) == ["a", "b", "c", "z"]  # c as early as it can, z as declared


def test_a_node_added_at_the_end_runs_at_the_end():
    """A site's own node declared last runs last, after the nodes declared before it, even if it
    names only an early one: it sees the frame as the whole graph left it."""
    g = graph(detect={"node": {"_target_": COUNTER}}, people={"node": {"_target_": COUNTER}, "after": ["detect"]},
              rules={"node": {"_target_": COUNTER}, "after": ["people"]},
              count={"node": {"_target_": COUNTER}, "after": ["detect"]})
    assert topological_order(g) == ["detect", "people", "rules", "count"]


def test_disabled_entry_is_skipped_and_after_entries_naming_it_are_ignored():
    g = graph(a={"node": {"_target_": COUNTER}, "after": ["source"]}, preview=None,
              b={"node": {"_target_": COUNTER}, "after": ["a", "preview"]})
    assert topological_order(g) == ["a", "b"]


@pytest.mark.parametrize(("entries", "node", "words"), [
    ({"a": {"node": {"_target_": COUNTER}, "after": ["detct"]}}, "a", "'after' names 'detct', which is no node"),
    ({"a": {"node": {"_target_": COUNTER}, "after": ["b"]},
      "b": {"node": {"_target_": COUNTER}, "after": ["a"]}}, "a", "cycle"),
    ({"a": {"node": {"label": "x"}, "after": ["source"]}}, "a", "no _target_"),
    ({"a": {"after": ["source"]}}, "a", "expected a mapping"),
    ({"a": {"node": {"_target_": COUNTER}, "after": "source"}}, "a", "must be a list"),
    ({"source": {"node": {"_target_": COUNTER}}}, "source", "reserved"),
    ({"a": {"node": {"_target_": COUNTER}, "aftr": ["b"]}}, "a", "unknown key 'aftr'"),
    ({"a": {"node": {"_target_": COUNTER}, "inputs": ["b"]}}, "a", "unknown key 'inputs' (an entry has only node, "
     "settings, uses, after, shared; did you mean 'after'?)"),
])
def test_malformed_graphs_raise_graph_error_naming_the_node(entries, node, words):
    with pytest.raises(GraphError) as info:
        build_nodes(graph(**entries))
    assert info.value.node == node
    assert f"'{node}'" in str(info.value) and words in str(info.value)


def test_required_value_names_the_full_key():
    g = graph(count={"node": {"_target_": COUNTER, "label": "???"}, "after": ["source"]})
    with pytest.raises(ConfigError, match=r"graph\.count\.node\.label"):
        build_nodes(g)


def test_unbuildable_class_is_a_graph_error():
    g = graph(bad={"node": {"_target_": "tests.custom_nodes.NoSuchClass"}, "after": ["source"]})
    with pytest.raises(GraphError, match="node 'bad': cannot build tests.custom_nodes.NoSuchClass"):
        build_nodes(g)


def test_object_without_process_is_rejected():
    g = graph(notanode={"node": {"_target_": "collections.OrderedDict"}, "after": ["source"]})
    with pytest.raises(GraphError, match="has no process"):
        build_nodes(g)


def test_user_node_from_yaml_is_built_with_its_arguments():
    nodes = build_nodes(graph(count={"node": {"_target_": COUNTER, "label": "shoppers"}, "after": ["source"]}))
    [(name, node)] = nodes
    assert name == "count" and isinstance(node, PeopleCounter) and node.label == "shoppers"
