"""Containers and blocks: indexing a container, looping over its entries, reaching entries by name,
rank-variadic input types, make_divisible's round limit, and bounded recursion (tree architectures)."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.elaborate import builtins
from archdsl.errors import ArchError, LimitError, ShapeError


def model(body: str, before: str = "", inputs: str = "  in x: [N, 8]\n") -> str:
    """A model with ``inputs`` and ``body`` as its statements."""
    return before + "model M() {\n" + inputs + body + "\n}\n"


def error_of(source: str) -> ArchError:
    """The ArchError compiling ``source`` raises."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    return info.value


# -- indexing -----------------------------------------------------------------------------------------
def test_entries_of_a_container_apply_to_different_inputs() -> None:
    """``layers[i](x)`` puts the entry's parameters where applying the whole container would."""
    g = archdsl.compile(model("  layers = [Linear(8) for i in range(3)]\n"
                              "  out layers[0](x) + layers[2](x |> relu) + layers[-2](x)"))
    assert [n.module for n in g.nodes if n.params] == ["layers.0", "layers.2", "layers.1"]
    assert sorted(g.params) == sorted(f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias"))


def test_an_entry_applied_twice_shares_its_weights_with_the_container() -> None:
    """An indexed entry is the container's entry: applying both uses one set of parameters."""
    g = archdsl.compile(model("  body = seq[Linear(8), relu]\n  out body[0](x) + (x |> body)"))
    assert list(g.params) == ["body.0.weight", "body.0.bias"]


def test_a_block_entry_takes_several_inputs() -> None:
    """``paths[j](y, z)`` with blocks of two inputs, named by the entry's index."""
    two = "block Two(c: int) {\n  in a: [N, C]\n  in b: [N, C]\n  fc = Linear(c)\n  out (a + b) |> fc\n}\n"
    g = archdsl.compile(model("  paths = seq[Two(8), Two(8)]\n  y = x |> relu\n  out paths[1](x, y) + paths[0](y, x)",
                              two))
    assert [n.module for n in g.nodes if n.params] == ["paths.1.fc", "paths.0.fc"]


def test_named_entries_by_position_by_key_and_nested() -> None:
    """Entries of ``seq{...}`` by position or by name; a nested container indexes again (HRNet's fuse[i][j])."""
    g = archdsl.compile(model('  fuse = seq{a: seq[Linear(8), Linear(8)], b: seq[Linear(8)]}\n'
                              '  out fuse[0][1](x) + fuse["b"][0](x)'))
    assert [n.module for n in g.nodes if n.params] == ["fuse.a.1", "fuse.b.0"]


def test_absent_entries_are_skipped_when_indexing() -> None:
    """Unnamed entries are numbered among the present ones, as applying the container numbers them."""
    g = archdsl.compile(model("  body = seq[relu if false, Linear(8)]\n  out body[0](x)"))
    assert [n.module for n in g.nodes] == ["body.0"]


def test_index_errors_are_located() -> None:
    """Out of range, a wrong key and a non-container are clear errors at the index."""
    exc = error_of(model("  layers = [Linear(8) for i in range(2)]\n  out layers[2](x)"))
    assert exc.diagnostics[0].message == "index 2 is out of range for a container of 2 entries"
    assert str(exc.diagnostics[0].span) == "<string>:4:14"
    exc = error_of(model('  body = seq{fc: Linear(8)}\n  out body["fcc"](x)'))
    assert exc.diagnostics[0].message == "the container 'body' has no entry 'fcc'"
    assert exc.diagnostics[0].hint == "did you mean 'fc'?"
    exc = error_of(model("  fc = Linear(8)\n  out fc[0](x)"))
    assert exc.diagnostics[0].message == "cannot index the layer 'fc' with an int"
    assert "only containers" in exc.diagnostics[0].hint


def test_entries_of_a_container_given_as_a_parameter() -> None:
    """A container passed as a ``layer`` parameter is indexed and looped over like a named one; its entries
    go under the block that applies them, as applying the whole container would put them."""
    fuse = ("block Fuse(paths: layer) {\n  in a: [N, 8]\n  in b: [N, 8]\n"
            "  out paths[0](a) + add_n([p(b) for p in paths])\n}\n")
    g = archdsl.compile(model("  fuse = Fuse(seq[Linear(8), Linear(8)])\n  out fuse(x, x |> relu)", fuse))
    assert [n.module for n in g.nodes if n.params] == ["fuse.0", "fuse.0", "fuse.1"]
    assert sorted(g.params) == ["fuse.0.bias", "fuse.0.weight", "fuse.1.bias", "fuse.1.weight"]


# -- attributes ---------------------------------------------------------------------------------------
def test_attribute_access_into_a_named_container() -> None:
    """``head.fc`` is the entry ``fc`` of the container ``head`` (timm's ``head.fc``)."""
    g = archdsl.compile(model("  head = seq{drop: Dropout(0.1), fc: Linear(4)}\n  out x |> head.fc"))
    assert [n.module for n in g.nodes] == ["head.fc"]
    assert list(g.params) == ["head.fc.weight", "head.fc.bias"]


def test_attribute_errors_name_the_entries() -> None:
    """A missing entry suggests the closest one; a block layer's insides are not reachable."""
    exc = error_of(model("  head = seq{drop: Dropout(0.1), fc: Linear(4)}\n  out x |> head.fcc"))
    assert exc.diagnostics[0].message == "the container 'head' has no entry 'fcc'"
    assert exc.diagnostics[0].hint == "did you mean 'fc'?"
    block = "block B() {\n  in a: [N, 8]\n  fc = Linear(8)\n  out a |> fc\n}\n"
    exc = error_of(model("  b = B()\n  out x |> b.fc", block))
    assert exc.diagnostics[0].message == "'.fc' needs an import alias or a container on the left, got the layer 'b'"


# -- loops --------------------------------------------------------------------------------------------
def test_for_over_a_containers_entries() -> None:
    """A comprehension over a container yields its entries (SKNet's two-slot chain, HRNet's branches)."""
    g = archdsl.compile(model("  paths = seq[Linear(8), Linear(8)]\n  outs = [p(x) for p in paths]\n"
                              "  out add_n(outs)"))
    assert [n.module for n in g.nodes if n.params] == ["paths.0", "paths.1"]


def test_zip_enumerate_and_len_see_entries() -> None:
    """Built-ins that take lists take a container's entries: len, zip, enumerate."""
    g = archdsl.compile(model("  paths = seq{a: Linear(8), b: Linear(8)}\n  ins = [x, x |> relu]\n"
                              "  outs = [p(y) for p, y in zip(paths, ins)]\n"
                              "  n = len(paths)\n  out add_n(outs) * n"))
    assert [n.module for n in g.nodes if n.params] == ["paths.a", "paths.b"]


# -- rank-variadic input types ------------------------------------------------------------------------
NORM = "block Norm() {\n  in x: [N, ..., C]\n  ln = LayerNorm()\n  out x |> ln\n}\n"


def test_a_variadic_type_takes_any_rank() -> None:
    """``[N, ..., C]`` matches rank 2 and rank 4; the named dims bind around the ellipsis."""
    g = archdsl.compile(model("  a = Norm()\n  out x |> a", NORM))
    assert str(g.nodes[0].types[0]) == "[N, 8]"
    g = archdsl.compile(model("  a = Norm()\n  out x |> a", NORM, "  in x: [N, 3, H, 8]\n"))
    assert str(g.nodes[0].types[0]) == "[N, 3, H, 8]"


def test_a_variadic_type_still_checks_its_fixed_dims() -> None:
    """The dims around ``...`` must match, and the rank must reach the fixed dims."""
    block = "block B() {\n  in x: [N, ..., 4]\n  out relu(x)\n}\n"
    exc = error_of(model("  b = B()\n  out x |> b", block))
    assert isinstance(exc, ShapeError)
    assert exc.diagnostics[0].message == "input 'x' of B expects [N, ..., 4], got [N, 8]: dim 1 should be 4 but is 8"
    block = "block B() {\n  in x: [N, C, ..., 4]\n  out relu(x)\n}\n"
    exc = error_of(model("  b = B()\n  out x |> b", block, "  in x: [4]\n"))
    assert exc.diagnostics[0].message == ("input 'x' of B expects a tensor of rank 3 or more [N, C, ..., 4], got the "
                                          "rank-1 tensor [4]")


def test_variadic_type_misuse() -> None:
    """Two ellipses, or one in a model input (whose dims must all be known), are located errors."""
    block = "block B() {\n  in x: [..., C, ...]\n  out relu(x)\n}\n"
    exc = error_of(model("  b = B()\n  out x |> b", block))
    assert exc.diagnostics[0].message == "a tensor type holds at most one '...'"
    assert str(exc.diagnostics[0].span) == "<string>:2:18"
    exc = error_of(model("  out relu(x)", inputs="  in x: [N, ...]\n"))
    assert exc.diagnostics[0].message == "a model input needs every dim; '...' is for block inputs and outputs"


def test_variadic_types_print_and_round_trip() -> None:
    """``archdsl fmt`` prints ``...`` in tensor types, in .arch and YAML."""
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_frontend import parse_yaml
    from archdsl.syntax.yaml_printer import format_yaml

    module = parse(model("  a = Norm()\n  out x |> a", NORM))
    text = format_module(module)
    assert "in x: [N, ..., C]" in text
    assert parse(text) == module
    assert "[N, ..., C]" in format_yaml(module)
    assert parse_yaml(format_yaml(module)) == module


def test_indexing_and_attributes_print_and_round_trip() -> None:
    """``archdsl fmt`` prints entry access as written, in .arch and YAML."""
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_module
    from archdsl.syntax.yaml_frontend import parse_yaml
    from archdsl.syntax.yaml_printer import format_yaml

    line = '  out fuse[0][1](x) + fuse["b"][0](x) + (x |> head.fc) + add_n([p(x) for p in fuse.a])\n'
    module = parse(model("  fuse = seq{a: seq[Linear(8), Linear(8)], b: seq[Linear(8)]}\n"
                         "  head = seq{fc: Linear(8)}\n" + line))
    text = format_module(module)
    assert line in text
    assert parse(text) == module
    assert parse_yaml(format_yaml(module)) == module


# -- built-ins ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [((30, 8), 32), ((30, 8, None, 0.9), 32), ((10, 8, None, 0.9), 16),
                                                ((10, 8, None, 0.5), 8), ((100, 32, None, 0.8), 96)])
def test_make_divisible_round_limit(args: tuple, expected: int) -> None:
    """timm's ``make_divisible(v, divisor, min_value, round_limit)``: round down no further than round_limit * v."""
    assert builtins.make_divisible(*args) == expected


def test_make_divisible_round_limit_in_a_spec() -> None:
    """The keyword works from a spec, and a bad limit is a located error."""
    g = archdsl.compile(model("  fc = Linear(make_divisible(10, 8, round_limit=0.5))\n  out x |> fc"))
    assert g.nodes[0].types[0].shape[1] == 8
    exc = error_of(model("  fc = Linear(make_divisible(10, 8, round_limit=2))\n  out x |> fc"))
    assert "round_limit must be in (0, 1]" in exc.diagnostics[0].message


# -- recursion ----------------------------------------------------------------------------------------
TREE = """
block Leaf(c: int) {
  in x: [N, C]
  fc = Linear(c)
  out relu(x |> fc)
}

block Tree(levels: int, c: int) {
  "A DLA-style tree: two subtrees, their outputs joined by a root."
  in x: [N, C]
  tree1 = Tree(levels - 1, c) if levels > 1 else Leaf(c)
  tree2 = Tree(levels - 1, c) if levels > 1 else Leaf(c)
  root = Linear(c)
  x1 = x |> tree1
  out concat([x1, x1 |> tree2], dim=1) |> root
}
"""


def test_a_tree_recursion_names_its_parameters_by_path() -> None:
    """A recursive tree elaborates level by level, with torch-style nested names."""
    g = archdsl.compile(model("  level = Tree(3, 8)\n  out x |> level", TREE))
    assert "level.tree1.tree1.tree1.fc.weight" in g.params
    assert "level.tree2.tree2.root.weight" in g.params
    assert sum(1 for n in g.nodes if n.op.name == "linear") == 8 + 7


def test_a_runaway_tree_stops_at_the_node_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree that doubles at every level hits the work budget as a LimitError, never a hang."""
    from archdsl.elaborate import builder

    monkeypatch.setattr(builder, "MAX_NODES", 5_000)
    exc = error_of(model("  level = Tree(40, 8)\n  out x |> level", TREE))
    assert isinstance(exc, LimitError)
    assert "more than 5,000 nodes" in exc.diagnostics[0].message


def test_unused_container_entries_are_not_an_error_when_the_container_is_used() -> None:
    """Using some entries of a named container uses the container."""
    g = archdsl.compile(model("  layers = [Linear(8) for i in range(3)]\n  out layers[1](x)"))
    assert list(g.params) == ["layers.1.weight", "layers.1.bias"]
